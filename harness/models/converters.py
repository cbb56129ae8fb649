"""ONNX → engine formats, cached by content: source sha256 + converter + version + options."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .cache import cache_root, sha256_file, sha256_text


class ConvertError(Exception):
    """A converter failed; the message is the converter's own output (tail)."""


@dataclass(frozen=True)
class Artifact:
    format: str
    files: dict[str, Path]
    converter: str  # e.g. "pnnx 20261020 fp16=0", "" for files used as they are
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    sha256: str = ""
    extra: dict = field(default_factory=dict)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise ConvertError(f"converter package {dist} is not installed") from None


def _run(cmd: list[str], cwd: Path, timeout: float = 900) -> str:
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConvertError(f"{Path(cmd[0]).name} timed out after {timeout:.0f} s") from None
    out = (p.stdout or "") + (p.stderr or "")
    if p.returncode != 0:
        raise ConvertError(f"{Path(cmd[0]).name} exited {p.returncode}: {_tail(out)}")
    return out


def _tail(text: str, n: int = 600) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return text[-n:]


def _cached(key: str, build) -> Path:
    """Return the cache dir for key, building it in a temp dir and renaming when complete."""
    final = cache_root() / "models" / key
    if (final / "meta.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}."))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same conversion first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def onnx_io_names(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    ins = tuple(i.name for i in m.graph.input if i.name not in inits)
    return ins, tuple(o.name for o in m.graph.output)


_MNNCONVERT = "import sys, _tools; _tools.mnnconvert(sys.argv)"


def to_mnn(src: Path) -> Artifact:
    ver = _version("MNN")
    converter = f"mnnconvert {ver}"
    sha = sha256_file(src)
    key = sha256_text(sha, "mnn", converter)[:24]

    def build(d: Path) -> None:
        # The converter's extension is called directly: the wheel's `mnnconvert` wrapper sends
        # usage telemetry and, when its logging SDK is missing, runs `pip install` of it, which
        # downgrades protobuf under onnx.
        out = _run([sys.executable, "-c", _MNNCONVERT, "mnnconvert", "-f", "ONNX", "--modelFile",
                    str(src), "--MNNModel", str(d / "model.mnn"), "--bizCode", "harness"], d)
        if "Converted Success" not in out or not (d / "model.mnn").exists():
            raise ConvertError(f"mnnconvert did not convert: {_tail(out)}")
        (d / "convert.log").write_text(out)
        (d / "meta.json").write_text(json.dumps({"converter": converter, "source": sha}))

    d = _cached(key, build)
    ins, outs = onnx_io_names(src)
    f = d / "model.mnn"
    return Artifact("mnn", {"mnn": f}, converter, ins, outs, sha256_file(f))


def pnnx_binary() -> Path:
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        raise ConvertError("pnnx is not installed (pip install pnnx)")
    # The package's Python wrapper imports torch; the binary beside it needs nothing.
    exe = Path(spec.submodule_search_locations[0]) / "pnnx"
    if not exe.exists():
        raise ConvertError(f"pnnx binary missing at {exe}")
    return exe


def to_ncnn(src: Path, input_shapes: list[tuple[int, ...]]) -> Artifact:
    # fp16=0: pnnx stores weights as fp16 by default, which on PP-OCRv4 det drops the output's
    # cosine to the fp32 reference to ~0.05; runtime fp16 is chosen by ncnn's options instead.
    opts = "fp16=0"
    shapes = ",".join("[" + ",".join(map(str, s)) + "]" for s in input_shapes)
    converter = f"pnnx {_version('pnnx')} {opts}"
    sha = sha256_file(src)
    key = sha256_text(sha, "ncnn", converter, shapes)[:24]

    def build(d: Path) -> None:
        os.symlink(src, d / "model.onnx")
        out = _run([str(pnnx_binary()), "model.onnx", f"inputshape={shapes}", opts], d)
        param, binf = d / "model.ncnn.param", d / "model.ncnn.bin"
        if not param.exists() or not binf.exists():
            raise ConvertError(f"pnnx wrote no ncnn files: {_tail(out)}")
        # Keep only what is needed: pnnx also writes large intermediate onnx/pnnx files.
        for p in d.iterdir():
            if p.name not in ("model.ncnn.param", "model.ncnn.bin"):
                p.unlink()
        (d / "convert.log").write_text(out)
        (d / "meta.json").write_text(json.dumps({"converter": converter, "source": sha,
                                                 "inputshape": shapes}))

    d = _cached(key, build)
    ins, outs = onnx_io_names(src)
    param, binf = d / "model.ncnn.param", d / "model.ncnn.bin"
    # pnnx names blobs in0.. and out0.. in the order of the ONNX graph's inputs and outputs.
    return Artifact("ncnn", {"param": param, "bin": binf}, converter,
                    tuple(f"in{i}" for i in range(len(ins))),
                    tuple(f"out{i}" for i in range(len(outs))),
                    sha256_text(sha256_file(param), sha256_file(binf)),
                    {"onnx_inputs": ins, "onnx_outputs": outs})


def from_onnx(src: Path, fmt: str, input_shapes: list[tuple[int, ...]]) -> Artifact:
    if fmt == "mnn":
        return to_mnn(src)
    if fmt == "ncnn":
        return to_ncnn(src, input_shapes)
    if fmt == "onnx":
        ins, outs = onnx_io_names(src)
        return Artifact("onnx", {"onnx": src}, "", ins, outs, sha256_file(src))
    raise ConvertError(f"no converter from ONNX to {fmt}")
