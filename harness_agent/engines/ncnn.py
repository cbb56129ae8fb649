"""ncnn through its Python binding (Net + Extractor).

Per-layer outputs (diagnose): every blob of the loaded net is pulled through one Extractor, in
the layer order of the param file (which is topological), with light mode off so that no blob
is released or overwritten in place before it is read.
"""

from __future__ import annotations

import statistics
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..fdcapture import capture_native_output, relevant_lines
from ..sysinfo import cpu_flags
from .base import Adapter as _Base
from .base import Unsupported, match_names


# The layers ncnn2int8 quantizes and the param id of their int8_scale_term (src/layer/*.cpp:
# ``int8_scale_term = pd.get(8, 0)`` or ``pd.get(18, 0)``); a non-zero term means int8 weights,
# which ncnn runs in int8 with opt.use_int8_inference (its default)
INT8_TERM = {"Convolution": 8, "ConvolutionDepthWise": 8, "InnerProduct": 8, "RNN": 8,
             "LSTM": 8, "GRU": 8, "Embed": 18, "Gemm": 18, "MultiHeadAttention": 18,
             "SDPA": 18}
# layers that only route blobs: not counted among the ops
_NOT_OPS = ("Input", "Split")


def param_layers(text: str) -> List[Tuple[str, List[str], Dict[str, str]]]:
    """The layers of an ncnn text .param as (type, top blob names, {param key: raw value}).
    Raises ValueError for text that is not a .param (its first line is not 7767517)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "7767517":
        raise ValueError("not an ncnn text .param (the first line is not 7767517)")
    out = []
    for line in lines[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        nb, nt = int(parts[2]), int(parts[3])
        tops = parts[4 + nb:4 + nb + nt]
        kv = dict(t.partition("=")[::2] for t in parts[4 + nb + nt:])
        out.append((parts[0], tops, kv))
    return out


def param_int8_layers(text: str) -> Tuple[int, int]:
    """(int8 layers, ops) of an ncnn text .param: a layer is int8 when its type has an
    int8_scale_term (INT8_TERM) and the term is not 0 (ncnn2int8 writes 1, 2, or 101/102 when
    it fused a requantize); ops are all layers but Input and Split. Raises ValueError for
    text that is not a .param."""
    n = total = 0
    for typ, _, kv in param_layers(text):
        if typ in _NOT_OPS:
            continue
        total += 1
        key = INT8_TERM.get(typ)
        if key is not None and kv.get(str(key), "0").strip() not in ("0", ""):
            n += 1
    return n, total


class Adapter(_Base):
    name = "ncnn"
    BACKENDS = ("cpu", "vulkan")
    # int8: a model quantized by ncnn2table + ncnn2int8 (harness.models.quantize), or an
    # int8 .param as given; ncnn has no weight-only int8 path
    PRECISIONS = ("fp32", "fp16", "int8")
    MODEL_FORMAT = "ncnn"
    MODULE = "ncnn"
    PIP_PACKAGE = "ncnn"
    LAYER_OUTPUTS = True
    LAYER_TIMES = "ncnn-extract-delta"
    LAYER_TIMES_NOTE = (
        "per-layer times need ncnn built with NCNN_BENCHMARK; this is the wheel: the ncnn "
        "Python binding exposes no per-layer timing (ncnn times layers only in builds with "
        "NCNN_BENCHMARK, which the PyPI wheel is not). The times below are extract deltas: "
        "each layer's blobs extracted in order, every earlier blob already computed; each "
        "extract waits for its blob (and downloads it from the GPU on Vulkan), so they are "
        "approximate")
    # pnnx renames every blob (in0, 1, 2, ...): tensors are matched to ONNX names by value
    ONNX_NAME_MATCH = "by-value"
    # param key 31 on a layer line: ncnn's per-layer feature mask (no fp16, no Vulkan, ...)
    FIX_STRATEGY = "featmask"
    # the Vulkan device banner printed when the wheel probes the GPU: "[0 llvmpipe (...)]  ..."
    LOG_NOISE = (r"^\[\d+ [^\]]*\]\s",)

    def __init__(self, job):
        super().__init__(job)
        # Importing ncnn prints to the native descriptors; so does probing Vulkan.
        # Counting GPUs creates ncnn's Vulkan instance (with lavapipe: ~55 MiB and a pool of
        # driver threads), so only a vulkan job does it, here, before the load phase is timed.
        # A CPU run never creates it, as a CPU-only application would not: with it, the
        # steady-state peak RSS of identical CPU runs differed by 16-96 MiB between processes
        # (the driver threads' allocations shift how glibc's heap fragments under the
        # engine's large per-inference buffers); without it, by under 1 MiB at a fixed
        # iteration count.
        with capture_native_output():
            import ncnn
            self.gpu_count = (ncnn.get_gpu_count() if job.get("backend") == "vulkan"
                              else None)
        self.ncnn = ncnn

    @classmethod
    def probe_engine(cls):
        with capture_native_output(echo_fd=-1):
            import ncnn
            n = ncnn.get_gpu_count()
            devices = [ncnn.get_gpu_info(i).device_name() for i in range(n)]
        return {"version": ncnn.__version__, "devices": devices}

    def version(self) -> str:
        return self.ncnn.__version__

    def _cpu_precision(self, net) -> tuple:
        """(effective precision, note) of an fp16 request on the CPU, by ncnn's own rules.

        ncnn's Net::forward_layer (src/net.cpp) casts blobs to fp16 only on ARM with asimdhp
        (fp16 storage and arithmetic) or VFPv4 (storage), or RISC-V with zfh; on x86 only
        InnerProduct keeps its weights in fp16 when the CPU has F16C
        (src/layer/x86/innerproduct_x86.cpp), activations staying fp32.
        """
        ncnn = self.ncnn

        def has(name: str) -> bool:
            return bool(getattr(ncnn, name, lambda: 0)())

        if has("cpu_support_arm_asimdhp"):
            return "fp16", ""
        if has("cpu_support_arm_vfpv4"):
            return "fp16-storage", "ncnn: this CPU has no fp16 arithmetic; blobs are stored fp16"
        inner = any(layer.type == "InnerProduct" for layer in net.layers())
        if inner and " f16c " in cpu_flags():
            return "fp16-storage", ("ncnn: on x86 only InnerProduct weights are stored fp16 "
                                    "(F16C); activations and arithmetic are fp32")
        return "fp32", ("ncnn: no fp16 path for this model on this CPU (fp16 storage is "
                        "ARM/RISC-V only, and x86 InnerProduct weights); it ran in fp32")

    # ncnn's powersave: 0 all cores, 1 little cores, 2 big cores (ncnn/src/cpu.h)
    POWERSAVE = {"little": 1, "big": 2}

    def _powersave(self, options) -> None:
        """ncnn's own core selection: the suite's engine option wins; else big/little cores
        map to powersave 2/1. An explicit core list or all cores sets nothing (the agent's
        affinity mask holds)."""
        cores = str(self.job.get("cores") or "all")
        if "powersave" in options:
            mode = int(options["powersave"])
            self.core_hint = "ncnn powersave=%d (engine_options)" % mode
            if self.POWERSAVE.get(cores, mode) != mode:
                self.notes.append("ncnn: engine_options powersave=%d kept for cores=%s"
                                  % (mode, cores))
        elif cores in self.POWERSAVE:
            mode = self.POWERSAVE[cores]
            self.core_hint = "ncnn powersave=%d" % mode
        else:
            self.core_hint = "none: ncnn powersave not set (affinity mask only)"
            return
        self.ncnn.set_cpu_powersave(mode)

    def load(self, files, backend, precision, threads, options, input_shapes):
        ncnn = self.ncnn
        if backend not in ("cpu", "vulkan"):
            raise Unsupported("ncnn has no backend %r in this harness" % backend)
        if precision == "int8-weight":
            raise Unsupported("ncnn has no weight-only int8: its int8 tools (ncnn2table/"
                              "ncnn2int8) quantize weights and activations (precision int8)")
        if precision not in self.PRECISIONS:
            raise Unsupported("no ncnn path for precision %r in this harness" % precision)
        self._powersave(options)
        net = ncnn.Net()
        opt = net.opt
        opt.num_threads = int(threads)
        want_vk = backend == "vulkan"
        if want_vk and self.gpu_count is None:  # a job built without a backend
            with capture_native_output() as cap:
                self.gpu_count = ncnn.get_gpu_count()
            self.import_log += cap.text
        opt.use_vulkan_compute = want_vk
        half = precision == "fp16"
        opt.use_fp16_packed = half
        opt.use_fp16_storage = half
        opt.use_fp16_arithmetic = half
        opt.use_bf16_storage = False
        # ncnn's default, said here because it decides whether int8 layers run in int8
        opt.use_int8_inference = True
        with capture_native_output() as cap:
            rc_param = net.load_param(files["param"])
            rc_model = net.load_model(files["bin"]) if rc_param == 0 else 0
        # ncnn says why on stderr ("layer ArgMax not exists or registered"): keep its words
        why = relevant_lines(cap.text, self.LOG_NOISE).replace("\n", "; ") or "no reason given"
        if rc_param != 0:
            raise RuntimeError("ncnn could not load param %s: %s" % (files["param"], why))
        if rc_model != 0:
            raise RuntimeError("ncnn could not load model %s: %s" % (files["bin"], why))
        # ncnn turns use_vulkan_compute off when there is no usable device: read it back.
        on_vk = want_vk and bool(net.opt.use_vulkan_compute) and bool(self.gpu_count)
        self.effective_backend = "vulkan" if on_vk else "cpu"
        if want_vk and not on_vk:
            self.notes.append("ncnn: no Vulkan device (gpu_count=%d), ran on CPU" % self.gpu_count)
        if on_vk:
            info = ncnn.get_gpu_info(ncnn.get_default_gpu_index())
            self.details["gpu_device"] = info.device_name()
            # type 3 is VK_PHYSICAL_DEVICE_TYPE_CPU: a software rasterizer such as lavapipe.
            self.details["gpu_type"] = {0: "other", 1: "integrated", 2: "discrete",
                                        3: "cpu", 4: "virtual"}.get(info.type(), str(info.type()))
            try:  # VulkanDevice::get_heap_budget: VK_EXT_memory_budget's budget, else the heap
                self.details["gpu_heap_budget_mb"] = float(
                    ncnn.get_gpu_device(ncnn.get_default_gpu_index()).get_heap_budget())
            except Exception:  # noqa: BLE001 - older bindings do not expose it
                pass
            # load_param sanitizes net.opt by what the device supports: read back what is on
            o = net.opt
            if o.use_fp16_arithmetic:
                self.effective_precision = "fp16"
            elif o.use_fp16_storage or o.use_fp16_packed:
                self.effective_precision = "fp16-storage"
            else:
                self.effective_precision = "fp32"
            if half and self.effective_precision != "fp16":
                self.notes.append("ncnn: the Vulkan device has no fp16 arithmetic%s" % (
                    "" if self.effective_precision == "fp16-storage" else " or storage"))
        elif half:
            self.effective_precision, note = self._cpu_precision(net)
            if note:
                self.notes.append(note)
        else:
            self.effective_precision = precision
        self._int8_layers(files["param"], precision, bool(net.opt.use_int8_inference))
        self.details["engine_options"] = {
            "num_threads": int(threads), "use_vulkan_compute": on_vk,
            # what ncnn kept after checking the device, not what was asked
            "use_fp16_storage": bool(net.opt.use_fp16_storage),
            "use_fp16_packed": bool(net.opt.use_fp16_packed),
            "use_fp16_arithmetic": bool(net.opt.use_fp16_arithmetic),
            "use_int8_inference": bool(net.opt.use_int8_inference),
            "powersave": ncnn.get_cpu_powersave(),
            # whether this process created ncnn's Vulkan instance (vulkan backend only)
            "gpu_instance": self.gpu_count is not None,
        }
        said = relevant_lines(cap.text, self.LOG_NOISE)
        if said:
            self.notes.append(said[-500:])
        self.net = net
        self.input_names = match_names(self.job.get("input_names"), list(net.input_names()),
                                       self.notes)
        self.output_names = list(self.job.get("output_names") or net.output_names())
        self.input_shapes = input_shapes
        self.in_dtypes = self._feed_dtypes()
        for name, want in zip(self.output_names, self.job.get("output_dtypes") or []):
            if want and want != "float32":
                self.notes.append("ncnn: output %s is float32 (model: %s), compared by value"
                                  % (name, want))

    def _int8_layers(self, param: str, precision: str, int8_on: bool) -> None:
        """int8_ops/ops_total from the .param (ncnn's Python binding does not expose a
        layer's int8_scale_term), and the precision that ran: int8 when a layer is int8 and
        use_int8_inference is on (ncnn then runs it in int8, whatever else was asked: a
        model that arrives quantized runs as given); an int8 request with no int8 layer ran
        in fp32."""
        try:
            with open(param) as f:
                n, total = param_int8_layers(f.read())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            if precision == "int8":
                self.notes.append("ncnn: int8 layers not readable (%s): precision as "
                                  "requested" % e)
            return
        if precision != "int8" and n == 0:
            return  # a float model at a float precision: nothing to say
        self.details.update(int8_ops=n, ops_total=total)
        if n and int8_on:
            if precision != "int8":
                self.notes.append("ncnn: the model arrived quantized (%d of %d layers int8): "
                                  "it runs as given" % (n, total))
            self.effective_precision = "int8"
        elif precision == "int8":
            self.effective_precision = "fp32"
            self.notes.append("ncnn: no layer runs in int8 (%d of %d layers int8, "
                              "use_int8_inference=%s): the model ran in fp32"
                              % (n, total, int8_on))

    def _feed_dtypes(self) -> List[str]:
        """The dtype each input blob is fed in: the one pnnx laid it out for (pnnx makes an
        int64 input int32, whose bits layers such as Embed read), else float32 for floating
        inputs and int32 for integer and bool ones. Every change of dtype is noted."""
        said = dict((self.job.get("feed") or {}).get("dtype") or {})
        given = list(self.job.get("input_dtypes") or [])
        out = []
        for i, name in enumerate(self.input_names):
            have = given[i] if i < len(given) else "float32"
            want = said.get(name) or ("float32" if np.dtype(have).kind == "f" else "int32")
            if want not in ("float32", "int32"):
                want = "float32"  # ncnn blobs hold 32-bit elements
            if want != have:
                self.notes.append("ncnn: input %s (%s) fed as %s" % (name, have, want))
            out.append(want)
        return out

    def feed(self, ex, inputs: List[np.ndarray]) -> None:
        """Set the inputs on an extractor (also used by the per-layer dumper)."""
        batch = dict((self.job.get("feed") or {}).get("batch_index") or {})
        for name, dtype, x in zip(self.input_names, self.in_dtypes, inputs):
            if x.ndim == 0:
                x = x.reshape(1)  # a scalar is a one-element blob
            # ncnn blobs usually have no batch axis: the converter says whether it took axis 0
            # as one (dropped here) or kept every axis; without word (a native .param), a
            # leading 1 of a 4-D input is dropped. Batches above 1 are not supported.
            drop = batch[name] == 0 if name in batch else x.ndim == 4
            if drop and x.ndim >= 1:
                if x.shape[0] != 1:
                    raise Unsupported("ncnn runs batch 1 only, got shape %s" % (x.shape,))
                x = x[0]
            # A Mat made from an array shares its memory, and ncnn's light mode lets an in-place
            # first layer (ReLU, Sigmoid, BinaryOp with a scalar, ...) write into its input:
            # into the caller's array, which crashes or corrupts the next run. The engine gets
            # its own copy, made here, inside the timed call like every engine's input copy.
            ex.input(name, self.ncnn.Mat(np.ascontiguousarray(x, dtype=dtype)).clone())

    def run(self, inputs: List[np.ndarray]) -> List[np.ndarray]:
        ex = self.net.create_extractor()
        self.feed(ex, inputs)
        res = []
        for name in self.output_names:
            ret, mat = ex.extract(name)
            if ret != 0:
                raise RuntimeError("ncnn extract(%r) returned %d" % (name, ret))
            res.append(np.array(mat, copy=True))
        return res

    # -- per layer ----------------------------------------------------------------------------
    def graph(self) -> List[Dict[str, object]]:
        """Layers in param-file order: {index, name, type, inputs, outputs} (blob names)."""
        net = self.net
        blobs = [b.name for b in net.blobs()]
        return [{"index": i, "name": layer.name, "type": layer.type,
                 "inputs": [blobs[j] for j in layer.bottoms],
                 "outputs": [blobs[j] for j in layer.tops]}
                for i, layer in enumerate(net.layers())]

    def _full_extractor(self, inputs: Sequence[np.ndarray]):
        ex = self.net.create_extractor()
        ex.set_light_mode(False)  # keep every blob; in-place layers work on copies
        self.feed(ex, list(inputs))
        return ex

    def walk(self, inputs, sink, on_layer=None):
        records = self.graph()
        wanted = set(self.output_names)
        finals: Dict[str, np.ndarray] = {}
        ex = self._full_extractor(inputs)
        for rec in records:
            if on_layer is not None:
                on_layer(str(rec["name"]), str(rec["type"]))
            tensors = {}
            for top in rec["outputs"]:
                ret, mat = ex.extract(top)
                if ret != 0:
                    tensors[top] = {"error": "extract returned %d" % ret}
                    continue
                arr = np.array(mat, copy=True)
                if top in wanted:
                    finals[top] = arr
                tensors[top] = sink(top, arr)
            rec["tensors"] = tensors
        for name in self.output_names:
            if name not in finals:
                ret, mat = ex.extract(name)
                if ret != 0:
                    raise RuntimeError("ncnn extract(%r) returned %d" % (name, ret))
                finals[name] = np.array(mat, copy=True)
        return records, [finals[n] for n in self.output_names]

    def layer_times(self, inputs, iterations):
        """The time each layer's extract() adds, with every earlier blob already computed (see
        LAYER_TIMES_NOTE: not how the layers run inside one normal inference)."""
        records = self.graph()
        samples: List[List[float]] = [[] for _ in records]
        for it in range(iterations + 1):
            ex = self._full_extractor(inputs)
            for i, rec in enumerate(records):
                t0 = time.perf_counter()
                for top in rec["outputs"]:
                    ex.extract(top)
                if it > 0:  # the first pass builds pipelines and allocators
                    samples[i].append((time.perf_counter() - t0) * 1e3)
        for rec, s in zip(records, samples):
            rec["ms"] = statistics.median(s) if s else None
        return records
