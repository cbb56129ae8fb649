"""ncnn .param files: parse layer lines, and patch the per-layer feature mask (param key 31).

A layer line is ``Type Name bottom_count top_count bottoms... tops... k=v ...`` where keys are
integers (negative keys ``-233xx`` hold arrays: ``-23303=3,0,1,2``). ncnn reads key 31 of every
layer as ``layer->featmask`` (src/net.cpp, Net::load_param) and, when it is non-zero, runs that
layer with the network's options masked by get_masked_option():

    bit 0 (1)   use_fp16_arithmetic off
    bit 1 (2)   use_fp16_storage and use_fp16_packed off
    bit 2 (4)   use_bf16_storage off
    bit 3 (8)   use_int8_packed / _storage / _arithmetic off
    bit 4 (16)  use_vulkan_compute off (the layer runs on the CPU; also image/tensor storage)
    bit 5 (32)  use_sgemm_convolution off
    bit 6 (64)  use_winograd_convolution off
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

MAGIC = "7767517"
FEATMASK_KEY = "31"
FEATMASK_BITS = {
    1: "no fp16 arithmetic",
    2: "no fp16 storage",
    4: "no bf16 storage",
    8: "no int8",
    16: "no Vulkan (this layer runs on the CPU)",
    32: "no sgemm convolution",
    64: "no winograd convolution",
}


def describe_mask(mask: int) -> str:
    parts = [text for bit, text in FEATMASK_BITS.items() if mask & bit]
    unknown = mask & ~sum(FEATMASK_BITS)
    if unknown:
        parts.append(f"unknown bits {unknown:#x}")
    return ", ".join(parts) or "none"


@dataclass
class ParamLayer:
    index: int
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[str, str] = field(default_factory=dict)  # key -> raw value text, file order
    line_no: int = 0  # 0-based line index in the file
    line: str = ""

    @property
    def featmask(self) -> int:
        return int(self.params.get(FEATMASK_KEY, "0"))

    def params_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.params.items())


@dataclass
class ParamFile:
    path: Path | None
    lines: list[str]
    layers: list[ParamLayer]
    blob_count: int

    def layer(self, name: str) -> ParamLayer:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(name)

    def by_name(self) -> dict[str, ParamLayer]:
        return {lay.name: lay for lay in self.layers}

    def producers(self) -> dict[str, str]:
        """blob name -> the name of the layer that writes it."""
        return {t: lay.name for lay in self.layers for t in lay.tops}

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def parse_line(line: str, index: int, line_no: int, where: str) -> ParamLayer:
    tok = line.split()
    try:
        nb, nt = int(tok[2]), int(tok[3])
        bottoms = tok[4:4 + nb]
        tops = tok[4 + nb:4 + nb + nt]
        if len(bottoms) != nb or len(tops) != nt:
            raise ValueError
    except (IndexError, ValueError):
        raise InputError(where, f"line {line_no + 1} is not an ncnn layer line: {line[:80]!r}",
                         "Type Name bottom_count top_count bottoms... tops... k=v...") from None
    params: dict[str, str] = {}
    for kv in tok[4 + nb + nt:]:
        k, sep, v = kv.partition("=")
        if not sep:
            raise InputError(where, f"line {line_no + 1}: {kv!r} is not key=value")
        params[k] = v
    return ParamLayer(index, tok[0], tok[1], bottoms, tops, params, line_no, line)


def parse_text(text: str, where: str = "param") -> ParamFile:
    lines = text.splitlines()
    if not lines or lines[0].strip() != MAGIC:
        raise InputError(where, "not an ncnn text param file", f"first line {MAGIC}")
    try:
        layer_count, blob_count = (int(t) for t in lines[1].split()[:2])
    except (IndexError, ValueError):
        raise InputError(where, "line 2 must hold the layer and blob counts") from None
    layers = []
    for i, line in enumerate(lines[2:], start=2):
        if not line.strip():
            continue
        layers.append(parse_line(line, len(layers), i, where))
    if len(layers) != layer_count:
        raise InputError(where, f"{len(layers)} layer lines, header says {layer_count}")
    return ParamFile(None, lines, layers, blob_count)


def parse(path: str | Path) -> ParamFile:
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(str(p), f"cannot read the param file ({e})") from None
    pf = parse_text(text, str(p))
    pf.path = p
    return pf


def with_featmask(line: str, mask: int) -> str:
    """The layer line with ``31=mask`` added, or OR-ed into an existing 31=."""
    tok = line.split()
    for i, kv in enumerate(tok):
        k, sep, v = kv.partition("=")
        if sep and k == FEATMASK_KEY and i >= 4:
            tok[i] = f"{FEATMASK_KEY}={int(v) | int(mask)}"
            return " ".join(tok)
    return line.rstrip() + f" {FEATMASK_KEY}={int(mask)}"


def patch_text(pf: ParamFile, masks: dict[str, int]) -> tuple[str, dict[str, str]]:
    """(patched file text, layer name -> patched line) for masks: layer name -> featmask."""
    lines = list(pf.lines)
    patched: dict[str, str] = {}
    byname = pf.by_name()
    for name, mask in masks.items():
        if name not in byname:
            raise KeyError(f"no layer {name!r} in {pf.path or 'the param file'}")
        lay = byname[name]
        lines[lay.line_no] = with_featmask(lines[lay.line_no], mask)
        patched[name] = lines[lay.line_no]
    return "\n".join(lines) + "\n", patched


def write_patched(src: str | Path, masks: dict[str, int], dst: str | Path) -> dict[str, str]:
    """Write a copy of ``src`` with the masks applied to ``dst`` (atomically); patched lines."""
    from ..store.atomic import atomic_write_bytes
    pf = parse(src)
    text, patched = patch_text(pf, masks)
    atomic_write_bytes(Path(dst), text.encode())
    return patched
