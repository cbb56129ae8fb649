"""int8 on the armv7l test host (qemu-user): the coordinator quantizes PP-OCR cls with ncnn2table
+ ncnn2int8 built from the ncnn source tarball for its own machine, and with mnnquant, pushes
the int8 models like any model, and the host runs them: its own ncnn (the armv7l PyPI wheel)
and MNN 3.1.0 built from source for armv7l. Timings under emulation mean nothing; what is
checked is that int8 ran there, with its quantizer and its cosine against the fp32 reference
(ncnn's int8 layers counted by the agent on the host; MNN before 3.3 cannot say its op types,
so its rows keep the precision asked for and say it is not verified)."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.config.suite import load_suite
from harness.coordinator import run_suite
from harness.fleet.inventory import load_inventory
from tests.helpers import engine_src, write_inventory

# a cold machine builds the ncnn tools first (about 5 minutes on 2 cores)
pytestmark = [pytest.mark.hosts, pytest.mark.slow, pytest.mark.timeout(2400)]


def test_int8_runs_on_the_armv7_host(armv7_host, tmp_path):
    inv = write_inventory(tmp_path / "inv.toml", [armv7_host.inventory_entry()])
    (tmp_path / "s.toml").write_text(f"""
name = "int8-armv7"
engines = {{ ncnn = "installed", mnn = [ {{ source = "{engine_src('MNN-3.1.0.tar.xz')}" }} ] }}
precisions = ["fp32", "int8"]
[quantize]
ncnn_tools = "{engine_src('ncnn-20260526.tar.xz')}"
[measure]
warmup = 0
min_iterations = 2
processes = 1
timeout_s = 600
[[models]]
name = "cls"
builtin = "ppocr_cls"
calibration_samples = 4
""")
    rep = run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "res",
                    hosts=load_inventory(inv), progress=False, placement="threads")
    df = pd.DataFrame(rep.rows)
    assert len(df) == 4 and (df.status == "ok").all(), \
        df[["engine", "precision_requested", "status", "error"]].to_string()
    assert set(df.arch) == {"armv7l"}
    for engine, tool in (("ncnn", "ncnn2table"), ("mnn", "mnnquant ")):
        sel = df[df.engine == engine]
        fp32 = sel[sel.precision_requested == "fp32"].iloc[0]
        int8 = sel[sel.precision_requested == "int8"].iloc[0]
        assert fp32.verdict == "ok", (engine, fp32.out_cosine)
        assert int8.precision == "int8" and int8.quantizer.startswith(tool)
        assert int8.has_reference and -1 <= int8.out_cosine <= 1 + 1e-9
        assert int8.artifact_sha256 != fp32.artifact_sha256
    ncnn8 = df[(df.engine == "ncnn") & (df.precision_requested == "int8")].iloc[0]
    assert ncnn8.int8_ops > 0 and ncnn8.ops_total >= ncnn8.int8_ops
    mnn8 = df[(df.engine == "mnn") & (df.precision_requested == "int8")].iloc[0]
    assert mnn8.engine_version == "3.1.0" and "int8 not verified" in mnn8.notes
