"""harness: a distributed benchmark harness for on-device inference engines (MNN, ncnn)."""

__version__ = "0.1.0"
