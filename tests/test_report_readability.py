"""Report readability: a latency axis that one outlier does not flatten, charts that name the
engine, infinite errors labelled, a pairs table that fits 1400 px, and a diagnose page with
formatted numbers (never a raw `None`)."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from harness.compare import compare
from harness.compare.synthetic import frame, rows_for
from harness.diagnose.compare import LayerCheck, TensorCheck
from harness.diagnose.html import diagnosis_html
from tests.helpers import chromium
from tests.test_report_render import _browser


def _versions(rng, **per_thread):
    """mnn 3.4.0 vs 3.6.1 at each thread count given as threads=median_ms."""
    rows = []
    for th, ms in per_thread.items():
        for v in ("3.4.0", "3.6.1"):
            rows += rows_for(model="det", threads=int(th[1:]), engine_version=v,
                             engine_version_requested=v, median_ms=ms, rng=rng)
    return rows


def _latency_svg(html: str) -> str:
    return re.search(r'<svg[^>]*aria-label="[^"]*det[^"]*".*?</svg>', html, re.S).group(0)


@pytest.mark.unit
def test_one_slow_configuration_gets_a_log_axis_and_a_narrow_spread_stays_linear():
    rng = np.random.default_rng(5)
    spread = compare(frame(_versions(rng, t1=200.0, t2=10.0, t4=5.0)), "engine_version",
                     "3.4.0", "3.6.1", resamples=200).to_html()
    assert "latency (ms, log)" in _latency_svg(spread)
    narrow = compare(frame(_versions(rng, t1=20.0, t2=11.0, t4=6.0)), "engine_version",
                     "3.4.0", "3.6.1", resamples=200).to_html()
    assert "latency (ms)" in _latency_svg(narrow) and "log" not in _latency_svg(narrow)


@pytest.mark.unit
def test_charts_name_the_engine_and_infinite_errors_are_labelled():
    rng = np.random.default_rng(6)
    rows = rows_for(model="m", engine_version="3.4.0", rng=rng)
    rows += rows_for(model="m", engine_version="3.6.1", rng=rng, out_rel_err=math.inf,
                     out_cosine=0.5)
    html = compare(frame(rows), "engine_version", "3.4.0", "3.6.1", resamples=200).to_html()
    assert "mnn 3.4.0 (base)" in html and "mnn 3.6.1 (head)" in html
    errors = html[html.index("Output error per backend"):]
    assert re.search(r'<text [^>]*class="lab"[^>]*>inf</text>', errors)
    assert "rel_err inf (wrong)" in errors


def _diagnosis():
    def tensor(i, rel, cos, mx, diverged):
        return TensorCheck(i, f"l{i}", "Reduction", f"t{i}", f"t{i}", "name", [1], {}, {},
                           mx, rel, cos, diverged, "" if not diverged else "rel_err > tol")
    layers = [LayerCheck(0, "l0", "Convolution", [], [tensor(0, 1.23456e-7, 0.99999999,
                                                             3.0e-6, False)]),
              LayerCheck(1, "l1", "Reduction", [], [tensor(1, math.inf, None, None, True)]),
              LayerCheck(2, "l2", "Softmax", [], [tensor(2, math.nan, math.nan, None, True)])]
    analysis = SimpleNamespace(layers=layers, tolerance=SimpleNamespace(rel_err=1e-3))
    return SimpleNamespace(analysis=analysis, culprit=layers[1], inheritors=["l2"],
                           diagnosis_id="d1", model="reduction", engine="ncnn",
                           engine_version="1.0.20261020",
                           suspect=SimpleNamespace(backend="vulkan", precision="fp16", threads=1),
                           ran_as=("vulkan", "fp16"), reference="cpu/fp32", host="local")


@pytest.mark.unit
def test_diagnose_page_formats_numbers_and_never_prints_none():
    page = diagnosis_html(_diagnosis(), "report text")
    assert "None" not in page
    cells = re.findall(r"<td>([^<]*)</td>", page)
    assert "1.23e-07" in cells and "3e-06" in cells and "1" in cells  # cosine 0.99999999
    assert "inf" in cells and "NaN" in cells and "-" in cells
    assert "reduction on ncnn 1.0.20261020" in page
    assert re.search(r'class="lab"[^>]*>inf</text>', page)  # the culprit's error, named


@pytest.mark.slow
def test_pairs_table_fits_1400_px_in_chromium(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("chromium / chromium-browser is not on PATH")
    rng = np.random.default_rng(7)
    rows = []
    for i in range(6):  # many varying key columns and long free text
        model = f"a_rather_long_model_name_from_a_model_zoo_{i}_" + "x" * 40
        for v in ("3.4.0", "3.6.1"):
            rows += rows_for(model=model, engine_version=v, engine_version_requested=v,
                             threads=1 + i % 3, host=f"board-{i}", precision=["fp32", "fp16"][i % 2],
                             input_shape=f"x:1x3x{224 + i}x{224 + i},y:1x{i + 1}", rng=rng,
                             governor=["performance", "powersave"][i % 2] if v == "3.6.1"
                             else "performance")
    html = compare(frame(rows), "engine_version", "3.4.0", "3.6.1", resamples=200).to_html()
    probe = ("<script>document.body.setAttribute('data-widths', "
             "document.documentElement.scrollWidth + ',' + "
             "Math.max(...[...document.querySelectorAll('table')].map(t => t.scrollWidth)))"
             "</script></body>")
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", probe), encoding="utf-8")
    done = chromium(browser, tmp_path / "profile", "--window-size=1400,1000", "--dump-dom",
                    page.as_uri())
    if done is None:
        pytest.skip("chromium did not finish within 90 s")
    dom = done.stdout
    m = re.search(r'data-widths="(\d+),(\d+)"', dom)
    assert m, dom[-500:]
    page_w, table_w = int(m.group(1)), int(m.group(2))
    assert page_w <= 1400 and table_w <= 1400 - 2 * 24, (page_w, table_w)
