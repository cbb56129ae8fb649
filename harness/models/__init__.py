"""Models on the coordinator: what a model name means, its input shapes, its files per format.

- registry: built-in models by name (PP-OCR, micro-models) and models named on the command line
- shapes: the one input-shape grammar (``1x3x640x640``, ``x:1x3x640x640,y:1x4``) and formatter
- converters: model format -> converter registry (ONNX -> MNN/ncnn), Artifact, ConversionFailed,
  and the pnnx locator
- inputs: input names of an ONNX graph, input data, onnxruntime references
- prepare: a suite's models made ready to measure (PreparedModel)
- micromodels: generated models that reproduce known engine problems
"""
