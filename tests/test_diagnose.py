"""harness diagnose / profile with the real engines: ncnn on Vulkan (Mesa lavapipe), MNN, ORT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.diagnose import ORT, Config, diagnose, parse_reference, profile
from harness.diagnose import compare as cmp
from harness.diagnose import ncnn_param, testmodels
from harness.cli import build_parser
from harness.diagnose.text import render_diagnosis, render_profile
from harness.diagnose.search import MASKS
from harness.errors import HarnessError, InputError

VK16 = Config("vulkan", "fp16", 1)


def _param(model) -> Path:
    """The converted ncnn param the diagnosis ran (cached by content)."""
    from harness.diagnose.run import resolve_model
    return Path(resolve_model(model, "ncnn").artifact.files["param"])


# -- the Reduction overflow on ncnn Vulkan fp16 ---------------------------------------------------
@pytest.fixture(scope="module")
def reduction(tmp_path_factory):
    out = tmp_path_factory.mktemp("diag-reduction")
    d = diagnose("reduction_sum_block", "ncnn", VK16, out_dir=out)
    print("\n" + render_diagnosis(d))
    return d, out


@pytest.mark.engines
def test_reduction_is_located_to_the_reduction_layer(reduction):
    d, _ = reduction
    pf = ncnn_param.parse(_param("reduction_sum_block"))
    red = [lay for lay in pf.layers if lay.type == "Reduction"]
    assert len(red) == 1
    c = d.culprit
    assert c is not None and c.name == red[0].name and c.type == "Reduction"
    assert c.params == red[0].params_text()
    out = c.outputs[0]
    assert out.stats["inf"] > 0 and out.ref_stats["inf"] == 0 and out.ref_stats["nan"] == 0
    assert out.ref_stats["max"] > 65504  # the fp32 sum is finite, above fp16's range
    # its input (the convolution) is still within the fp16 tolerance
    (name, sus, ref), = d.analysis.input_checks(c)
    assert sus["inf"] == 0 and abs(sus["max"] - ref["max"]) < 0.05
    assert d.inheritors == [] and not d.final["ok"] and d.diverged
    assert d.ran_as == ("vulkan", "fp16")


@pytest.mark.engines
def test_reduction_fix_is_a_verified_mask_on_that_line_only(reduction):
    d, _ = reduction
    fix = d.fix
    assert fix is not None and fix.verified
    chosen = fix.chosen
    assert chosen.layers == [d.culprit.name] and chosen.mask in MASKS
    # masks were tried in order of cost and every one before the chosen failed
    tried = [a.mask for a in fix.attempts]
    assert tried == list(MASKS[:len(tried)]) and tried[-1] == chosen.mask
    assert all(not a.ok for a in fix.attempts[:-1])
    assert chosen.rel_err is not None and chosen.rel_err <= 1e-2 and chosen.cosine >= 0.999
    # the patched param differs from the original on exactly the culprit's line
    orig = _param("reduction_sum_block").read_text().splitlines()
    new = d.patched_param.read_text().splitlines()
    assert len(orig) == len(new)
    diff = [i for i, (a, b) in enumerate(zip(orig, new)) if a != b]
    assert len(diff) == 1
    line = new[diff[0]]
    assert line.split()[1] == d.culprit.name
    assert line.split()[-1] == f"31={chosen.mask}" and line.count("31=") == 1
    assert chosen.patched_lines == {d.culprit.name: line}
    # through the normal measurement path: original wrong, patched right (vs CPU fp32)
    sbs = {r["param"]: r for r in d.side_by_side}
    assert sbs["original"]["verdict"] == "nan/inf" and sbs["original"]["out_inf"] > 0
    assert sbs["patched"]["verdict"] == "ok" and sbs["patched"]["status"] == "ok"
    assert sbs["patched"]["median_ms"] > 0 and sbs["patched"]["out_rel_err"] <= 1e-2


@pytest.mark.engines
def test_reduction_rows_in_parquet(reduction):
    d, out = reduction
    (path,) = d.files
    day = path.parent.name
    assert path == out / "_diagnoses" / day / f"part-{d.diagnosis_id}.parquet"
    assert day.startswith("date=")
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file
    df = pd.read_parquet(out / "_diagnoses")
    assert len(df) == len(d.rows()) == sum(len(lay.outputs) for lay in d.analysis.layers)
    assert set(df.diagnosis_id) == {d.diagnosis_id}
    cul = df[df.role == "culprit"]
    assert list(cul.layer_name) == [d.culprit.name] and bool(cul.diverged.iloc[0])
    assert int(cul.inf.iloc[0]) > 0 and int(cul.ref_inf.iloc[0]) == 0
    assert (df.fix_mask == d.fix.mask).all() and df.fix_verified.all()
    assert (df[df.role != "culprit"].diverged == False).all()  # noqa: E712


# -- a failure in the middle of the graph ------------------------------------------------------
@pytest.fixture(scope="module")
def midgraph(tmp_path_factory):
    d = diagnose(testmodels.midgraph_overflow(), "ncnn", VK16, side_by_side=False,
                 workdir=tmp_path_factory.mktemp("diag-midgraph"))
    print("\n" + render_diagnosis(d))
    return d


@pytest.mark.engines
def test_midgraph_names_the_first_layer_and_its_inheritors(midgraph):
    d = midgraph
    pf = ncnn_param.parse(_param(testmodels.midgraph_overflow()))
    names = [lay.name for lay in pf.layers]
    types = {lay.name: lay.type for lay in pf.layers}
    c = d.culprit
    assert c is not None and types[c.name] == "Reduction"
    assert c.name != names[-1]
    later = names[names.index(c.name) + 1:]
    assert d.inheritors == later
    assert [types[n] for n in later] == ["BinaryOp", "Softmax", "Flatten", "InnerProduct"]
    assert all(lay.diverged for lay in d.analysis.inheritors)
    assert not d.final["ok"]
    # a fix was searched and verified on the whole model, never suggested unverified
    assert d.fix is not None and d.fix.verified and c.name in d.fix.chosen.layers
    assert all(not a.ok for a in d.fix.attempts[:-1])


@pytest.mark.engines
def test_midgraph_against_onnxruntime_matches_pnnx_blobs_to_onnx_names(midgraph):
    d = diagnose(testmodels.midgraph_overflow(), "ncnn", VK16, ORT, fix=False)
    assert d.culprit is not None and d.culprit.name == midgraph.culprit.name
    assert d.culprit.outputs[0].ref_tensor == "s"  # the ONNX ReduceSum output
    assert d.culprit.outputs[0].match == "value"
    assert d.inheritors == midgraph.inheritors
    assert d.reference.startswith("onnxruntime")


# -- MNN: weights altered after conversion, against onnxruntime on the original ONNX ------------
@pytest.fixture(scope="module")
def conv_chain(tmp_path_factory):
    from harness.models.converters import to_mnn
    src = testmodels.conv_chain()
    art = to_mnn(src)
    alt = tmp_path_factory.mktemp("diag-mnn") / "conv_chain_altered.mnn"
    testmodels.alter_mnn_conv(art.files["mnn"], alt, (8, 8, 3, 3), output_names=("c3",))
    return src, art.files["mnn"], alt


@pytest.mark.engines
def test_mnn_altered_convolution_is_located_against_onnxruntime(conv_chain):
    src, _, alt = conv_chain
    d = diagnose(alt, "mnn", Config("cpu", "fp32", 1), ORT, onnx=src)
    print("\n" + render_diagnosis(d))
    c = d.culprit
    assert c is not None and c.name == "c2" and c.type == "Convolution"
    assert c.outputs[0].ref_tensor in ("c2", "r2")
    assert "c3" in d.inheritors
    # everything before it agrees with onnxruntime
    before = [lay for lay in d.analysis.layers if lay.index < c.index and lay.compared]
    assert before and not any(lay.diverged for lay in before)
    # MNN has no per-layer switch: the report says whether precision=high fixes it (it cannot)
    assert d.high_precision is not None and d.high_precision["fixes"] is False
    assert d.fix is None


@pytest.mark.engines
def test_unaltered_mnn_model_reports_no_divergence(conv_chain):
    src, original, _ = conv_chain
    d = diagnose(original, "mnn", Config(), ORT, onnx=src)
    assert d.culprit is None and d.final["ok"] and not d.diverged
    assert d.analysis.compared >= 3


# -- clean models ---------------------------------------------------------------------------------
@pytest.mark.engines
@pytest.mark.parametrize("engine", ["mnn", "ncnn"])
def test_ppocr_cls_on_cpu_fp32_against_onnxruntime_is_clean(engine):
    d = diagnose("ppocr_cls", engine, Config(), ORT)
    text = render_diagnosis(d)
    assert "no divergence" in text
    assert d.culprit is None and d.final["ok"] and d.fix is None
    assert d.analysis.compared > 50


# -- the device side, and a remote host --------------------------------------------------------
@pytest.mark.engines
def test_dump_writes_every_blob_to_the_npz_of_the_job(tmp_path):
    from harness_agent.layers import NpzReader
    from harness.diagnose.run import _job, resolve_model
    from harness.executors.local import LocalExecutor
    m = resolve_model("reduction_sum_block", "ncnn")
    dump = tmp_path / "sub" / "all.npz"
    r = LocalExecutor().submit("dump", _job(m, "ncnn", Config(), dump_path=str(dump)), 120)
    assert r["status"] == "ok" and r["dump_path"] == str(dump)
    rd = NpzReader(str(dump))
    assert rd.order == ["in0", "1", "out0", "@output:out0"]  # + the final outputs by name
    assert rd.get("1").shape == (32, 128, 128) and np.isfinite(rd.get("out0")).all()
    assert [lay["type"] for lay in r["layers"]] == ["Input", "Convolution", "Reduction"]
    assert r["outputs"][0]["name"] == "out0"


@pytest.mark.engines
def test_diagnose_on_an_ssh_host(gpu_host):
    from harness.executors.ssh import SshExecutor
    from harness.fleet.inventory import HostSpec
    ex = SshExecutor(HostSpec(**gpu_host.inventory_entry()), "test-diagnose")
    try:
        d = diagnose("reduction_sum_block", "ncnn", VK16, executor=ex, fix=False)
        assert d.host == gpu_host.name
        assert d.culprit is not None and d.culprit.type == "Reduction"
        assert d.ran_as == ("vulkan", "fp16")
        # pushed by content: the model goes across; the input may already be on the host
        # (another test of the session measured the same built-in input there)
        kinds = {t["kind"] for t in ex.transfers}
        assert "model" in kinds and kinds <= {"model", "input", "reference", "agent"}
        # the reference dump stayed on the device and was removed with the diagnosis
        r = ex.t.run(["ls", f"{ex.work}/scratch"])
        assert d.diagnosis_id not in r.stdout
    finally:
        ex.close()


@pytest.mark.engines
def test_profile_cli_on_an_inventory_host(gpu_host, tmp_path, capsys):
    e = gpu_host.inventory_entry()
    inv = tmp_path / "inv.toml"
    inv.write_text("[[hosts]]\n" + "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in e.items() if k != "tags") + "\n")
    parser = build_parser()
    args = parser.parse_args(["profile", "--model", "reduction_sum_block", "--engine", "ncnn",
                              "--backend", "vulkan", "--iterations", "1", "--on", e["name"],
                              "--inventory", str(inv), "--data", str(tmp_path / "results")])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "ran as vulkan/fp32" in text and "no per-layer timing" in text


# -- profile ----------------------------------------------------------------------------------------
@pytest.mark.engines
def test_profile_mnn_times_every_op():
    p = profile("ppocr_cls", "mnn", iterations=3)
    assert p.timing == "mnn-callback" and len(p.layers) > 50
    top = p.top(5)
    assert len(top) == 5 and top[0]["ms"] >= top[-1]["ms"] > 0
    assert "ms" in render_profile(p, 5)


@pytest.mark.engines
def test_profile_ncnn_says_the_binding_has_no_layer_timing():
    p = profile("reduction_sum_block", "ncnn", iterations=2)
    assert "no per-layer timing" in p.note and p.timing == "ncnn-extract-delta"
    assert [lay["type"] for lay in p.layers] == ["Input", "Convolution", "Reduction"]


# -- units: param patching, comparisons, input errors, CLI -------------------------------------------
PARAM = """7767517
3 3
Input            in0   0 1 in0
Convolution      conv  1 1 in0 1 0=32 1=3 6=2304 31=1
Reduction        red   1 1 1 out0 0=0 1=0 -23303=3,0,1,2 4=1 5=1
"""


@pytest.mark.unit
def test_featmask_is_added_or_ored_into_an_existing_key(tmp_path):
    src = tmp_path / "m.param"
    src.write_text(PARAM)
    pf = ncnn_param.parse(src)
    assert [lay.type for lay in pf.layers] == ["Input", "Convolution", "Reduction"]
    assert pf.layer("red").params["-23303"] == "3,0,1,2"
    assert pf.layer("conv").featmask == 1 and pf.layer("red").bottoms == ["1"]
    dst = tmp_path / "p.param"
    lines = ncnn_param.write_patched(src, {"conv": 16, "red": 2}, dst)
    assert lines["conv"].endswith("31=17") and lines["conv"].count("31=") == 1
    assert lines["red"].endswith(" 31=2")
    again = ncnn_param.parse(dst)
    assert again.layer("conv").featmask == 17 and again.layer("red").featmask == 2
    assert ncnn_param.describe_mask(18) == "no fp16 storage, no Vulkan (this layer runs on the CPU)"
    with pytest.raises(InputError):
        ncnn_param.parse_text("7767517\n1 1\nInput in0 x\n")


@pytest.mark.unit
def test_tensor_checks_follow_the_precision_tolerance():
    tol32, tol16 = cmp.tolerance_for("fp32"), cmp.tolerance_for("fp16")
    e = {"ref_name": "a", "match": "name", "nan": 0, "inf": 0, "rel_err": 5e-3,
         "cosine": 0.99999, "max_abs_err": 0.005, "ref": {"min": -1, "max": 1, "nan": 0,
                                                          "inf": 0}}
    assert cmp.check_tensor(e, tol32)[0] is True
    assert cmp.check_tensor(e, tol16)[0] is False
    assert cmp.check_tensor({**e, "inf": 2}, tol16)[0] is True
    assert cmp.check_tensor({**e, "match": "order"}, tol16)[0] is None
    assert cmp.check_tensor({"match": "none"}, tol16)[0] is None


@pytest.mark.unit
def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(InputError):
        parse_reference("gpu")
    assert parse_reference("onnxruntime") == ORT
    assert parse_reference("cpu,fp32,2") == Config("cpu", "fp32", 2)
    with pytest.raises(InputError):
        diagnose("no-such-model", "ncnn", VK16)
    with pytest.raises(InputError):
        diagnose("reduction_sum_block", "onnxruntime", Config())
    with pytest.raises(InputError):
        diagnose("reduction_sum_block", "ncnn", Config("metal", "fp16", 1))
    mnn = tmp_path / "m.mnn"
    mnn.write_bytes(b"\0" * 16)
    with pytest.raises(InputError):  # onnxruntime needs the ONNX source of a native file
        diagnose(mnn, "mnn", Config(), ORT, shape="1x3x8x8")

    parser = build_parser()

    def main(argv):  # what harness.cli.main does with a HarnessError
        args = parser.parse_args(argv)
        try:
            return args.func(args)
        except HarnessError as e:
            print(f"harness: error: {e}")
            return e.exit_code

    rc = main(["diagnose", "--model", "reduction_sum_block", "--engine", "ncnn",
               "--reference", "cpu,fp32,x", "--quiet"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 2 and len(out) == 1 and "--reference" in out[0]
    rc = main(["profile", "--model", "reduction_sum_block", "--engine", "tflite"])
    assert rc == 2


@pytest.mark.engines
def test_cli_diagnose_exit_status_and_report(capsys, tmp_path):
    parser = build_parser()
    args = parser.parse_args(["diagnose", "--model", "reduction_sum_block", "--engine", "mnn",
                              "--quiet", "--no-fix"])
    assert args.func(args) == 0  # MNN on the CPU sums in fp32: nothing diverges
    assert "no divergence" in capsys.readouterr().out
    args = parser.parse_args(["profile", "--model", "reduction_sum_block", "--engine", "mnn",
                              "--top", "2", "--iterations", "2", "--data", str(tmp_path)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "Reduction" in text or "Convolution" in text


@pytest.mark.engines
def test_cli_diagnose_html_report(capsys, tmp_path):
    parser = build_parser()
    args = parser.parse_args(["diagnose", "--model", "reduction_sum_block", "--engine", "ncnn",
                              "--backend", "vulkan", "--precision", "fp16", "--quiet",
                              "--no-fix", "--data", str(tmp_path)])
    assert args.func(args) == 1  # the Reduction overflows fp16 on Vulkan
    out = capsys.readouterr().out
    html_path = next((tmp_path / "_diagnoses" / "_reports").glob("*.html"))
    assert str(html_path) in out
    html = html_path.read_text()
    assert "<svg" in html and "Reduction" in html and "culprit" in html
    assert 'data-series="sum_' in html  # the culprit layer is a plotted point
    assert "http://" not in html and "https://" not in html and "<script" not in html
    import pandas as pd
    assert pd.read_parquet(tmp_path / "_diagnoses").culprit.notna().all()
