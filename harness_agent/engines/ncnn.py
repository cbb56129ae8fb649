"""ncnn through its Python binding (Net + Extractor)."""

from __future__ import annotations

from typing import List

import numpy as np

from ..fdcapture import capture_native_output
from .base import Adapter as _Base
from .base import Unsupported


class Adapter(_Base):
    name = "ncnn"
    BACKENDS = ("cpu", "vulkan")
    PRECISIONS = ("fp32", "fp16")
    MODEL_FORMAT = "ncnn"
    PIP_PACKAGE = "ncnn"

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
        with capture_native_output() as cap:
            import ncnn
            self.gpu_count = (ncnn.get_gpu_count() if job.get("backend") == "vulkan"
                              else None)
        self.ncnn = ncnn
        self.import_log = cap.text

    def version(self) -> str:
        return self.ncnn.__version__

    def _fp16_cpu(self) -> bool:
        ncnn = self.ncnn
        # fp16 arithmetic on CPU exists only on ARM with asimdhp; x86 can at most store fp16.
        return bool(getattr(ncnn, "cpu_support_arm_asimdhp", lambda: 0)())

    def load(self, files, backend, precision, threads, options, input_shapes):
        ncnn = self.ncnn
        if backend not in ("cpu", "vulkan"):
            raise Unsupported("ncnn has no backend %r in this harness" % backend)
        if precision not in ("fp32", "fp16"):
            raise Unsupported("no ncnn path for precision %r in this harness" % precision)
        if "powersave" in options:
            ncnn.set_cpu_powersave(int(options["powersave"]))
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
        with capture_native_output() as cap:
            if net.load_param(files["param"]) != 0:
                raise RuntimeError("ncnn could not load param %s" % files["param"])
            if net.load_model(files["bin"]) != 0:
                raise RuntimeError("ncnn could not load model %s" % files["bin"])
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
            self.effective_precision = precision
        elif half and not self._fp16_cpu():
            self.effective_precision = "fp16-storage"
            self.notes.append("ncnn: this CPU has no fp16 arithmetic; fp16 applies to storage only")
        else:
            self.effective_precision = precision
        self.details["engine_options"] = {
            "num_threads": int(threads), "use_vulkan_compute": on_vk,
            "use_fp16_storage": half, "use_fp16_packed": half, "use_fp16_arithmetic": half,
            "powersave": ncnn.get_cpu_powersave(),
            # whether this process created ncnn's Vulkan instance (vulkan backend only)
            "gpu_instance": self.gpu_count is not None,
        }
        if cap.text.strip():
            self.notes.append(cap.text.strip()[-500:])
        self.net = net
        self.input_names = list(self.job.get("input_names") or net.input_names())
        self.output_names = list(self.job.get("output_names") or net.output_names())
        self.input_shapes = input_shapes

    def feed(self, ex, inputs: List[np.ndarray]) -> None:
        """Set the inputs on an extractor (also used by the per-layer dumper)."""
        for name, x in zip(self.input_names, inputs):
            # ncnn blobs have no batch axis: a leading 1 is dropped, anything else is unsupported.
            if x.ndim == 4:
                if x.shape[0] != 1:
                    raise Unsupported("ncnn runs batch 1 only, got shape %s" % (x.shape,))
                x = x[0]
            ex.input(name, self.ncnn.Mat(np.ascontiguousarray(x)))

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
