"""Pack a staged directory into a wheel (PEP 427) that pip installs offline on the host.

The wheel's name and version are the engine's own distribution name ("MNN", "ncnn") with a
local version label for the build ("3.1.0+src.ab12cd34ef56"), so the adapter's
``PIP_PACKAGE`` finds it like the PyPI wheel and nobody mistakes it for that wheel.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def pack(stage: Path, dist: str, version: str, tag: str, out_dir: Path,
         summary: str = "") -> Path:
    """Write ``out_dir/{dist}-{version}-{tag}.whl`` from the files under ``stage`` (they go to
    site-packages as laid out). ``tag``: "cp311-cp311-linux_armv7l". Returns the wheel path.
    Files keep their modes (shared libraries stay executable); entries are sorted, so the same
    stage gives the same archive listing."""
    name = re.sub(r"[^\w\d.]+", "_", dist)
    info = f"{name}-{version}.dist-info"
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{name}-{version}-{tag}.whl"
    meta = {
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
                             f"Summary: {summary}\n").encode(),
        f"{info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: harness\nRoot-Is-Purelib: false\n"
                          f"Tag: {tag}\n").encode(),
    }
    record = []
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            arc = path.relative_to(stage).as_posix()
            data = path.read_bytes()
            zi = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = (os.stat(path).st_mode & 0o777 | 0o100000) << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
            record.append(f"{arc},{_record_hash(data)},{len(data)}")
        for arc, data in meta.items():
            z.writestr(arc, data)
            record.append(f"{arc},{_record_hash(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    tmp.replace(wheel)
    return wheel
