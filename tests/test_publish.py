"""`harness publish`: the static trend site over a dataset built here (two sweeps of synthetic
rows written like RunWriter, and the sweep report the real `compare_with_previous` path writes).

The Chromium test renders every page of the site from disk in a real headless Chromium (the
helper and PNG decoder of test_report_render) and checks each screenshot is not blank, every
page has a chart, and every link resolves to a file in the site.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from harness.cli import main
from harness.compare.history import change_points
from harness.compare.sweeps import compare_with_previous, write_report
from harness.compare.synthetic import T0, rows_for, write_dataset
from harness.errors import InputError
from harness.publish import load_series, publish

from tests.helpers import chromium

from .test_report_render import _browser, decode_png

RUNS = ("20260528T000000Z-aaaaaa", "20260529T000000Z-bbbbbb")


def two_sweeps(data: Path, models=("det", "cls")) -> Path:
    """Two nightly sweeps (the second 25 % slower) and the second's sweep report."""
    rng = np.random.default_rng(1)
    rows = []
    for i, (run, f) in enumerate(zip(RUNS, (1.0, 1.25))):
        for model in models:
            rows += rows_for(run_id=run, sweep_kind="sweep", sweep_tag="nightly", model=model,
                             median_ms=20 * f, rng=rng, t0=T0 + i * 86400)
    write_dataset(rows, data)
    res = compare_with_previous(data, "nightly", RUNS[1])
    write_report(res, data / "_reports" / f"nightly-{RUNS[1]}")
    return data


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for k, v in attrs:
            if k in ("href", "src") and v is not None:
                self.links.append(v)


def _parse(page: Path) -> _Links:
    p = _Links()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def _check_links(site: Path) -> int:
    """Every href/src of every page is a relative link to a file inside the site."""
    n = 0
    for page in site.rglob("*.html"):
        for link in _parse(page).links:
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc, (page, link)
            if not parts.path:  # "#anchor" within the page
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), (page, link)
            assert site.resolve() in target.parents, (page, link)
            n += 1
    return n


@pytest.mark.unit
def test_site_over_two_sweeps_has_series_charts_and_report_links(tmp_path):
    data = two_sweeps(tmp_path / "data")
    site = tmp_path / "site"
    assert main(["publish", "--data", str(data), "--output", str(site)]) == 0
    pages = sorted(site.rglob("*.html"))
    series = sorted((site / "series").glob("*.html"))
    assert len(series) == 2 and (site / "index.html") in pages
    assert (site / "reports" / f"nightly-{RUNS[1]}.html").is_file()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<svg" in text, page
        assert "<script" not in text and "http://" not in text and "https://" not in text
    index = _parse(site / "index.html")
    assert {f"series/{p.name}" for p in series} <= set(index.links)
    for p in series:
        links = _parse(p).links
        assert f"../reports/nightly-{RUNS[1]}.html" in links and "../index.html" in links
        text = p.read_text(encoding="utf-8")
        assert text.count('data-series="latency"') == 2 and text.count('data-series="rss"') == 2
    assert _check_links(site) >= 2 * len(series) + len(series)
    # a second publish replaces the site; a directory it did not write is refused
    assert main(["publish", "--data", str(data), "--output", str(site), "--model", "det"]) == 0
    assert len(list((site / "series").glob("*.html"))) == 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="did not write"):
        publish(data, other)


@pytest.mark.unit
def test_change_points_are_history_s_and_are_marked(tmp_path):
    rng = np.random.default_rng(2)
    rows = []
    levels = [10.0] * 5 + [13.0] * 5
    for i, level in enumerate(levels):
        rows += rows_for(run_id=f"2026052{i}T000000Z-{i:06d}", median_ms=level, rng=rng,
                         t0=T0 + i * 3600, processes=3, samples=20)
    data = tmp_path / "data"
    write_dataset(rows, data)
    (s,) = load_series(data)
    medians = [r.median_ms for r in s.runs]
    assert [i for i, r in enumerate(s.runs) if r.latency_change is not None] == \
        change_points(medians) == [5]
    assert s.runs[5].latency_change == pytest.approx(0.3, abs=0.03)
    assert all(r.p10_ms < r.median_ms < r.p90_ms for r in s.runs)
    site = tmp_path / "site"
    publish(data, site)
    page = next((site / "series").glob("*.html")).read_text(encoding="utf-8")
    assert page.count('class="cp"') == 1 and "+30" in page
    assert "+30" in (site / "index.html").read_text(encoding="utf-8")


@pytest.mark.unit
def test_publish_refuses_out_and_needs_output(tmp_path, capsys):
    assert main(["publish", "--data", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    assert "--output" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["publish", "--data", str(tmp_path)])
    assert main(["publish", "--data", str(tmp_path / "none"), "--output",
                 str(tmp_path / "s")]) == 2


def _screenshot(browser: str, page: Path, png: Path, profile: Path) -> np.ndarray | None:
    if chromium(browser, profile, f"--screenshot={png}", "--window-size=1400,1000",
                page.as_uri()) is None:
        return None
    return decode_png(png.read_bytes()) if png.exists() else None


@pytest.mark.slow
def test_site_renders_in_headless_chromium(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("chromium / chromium-browser is not on PATH "
                    "(scripts/install-test-deps.sh --with-chromium)")
    data = two_sweeps(tmp_path / "data")
    site = tmp_path / "site"
    publish(data, site)
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 4  # index, two series, one sweep report
    assert _check_links(site) > 0
    for i, page in enumerate(pages):
        assert "svg" in _parse(page).tags, page  # a chart on every page
        img = _screenshot(browser, page, tmp_path / f"shot{i}.png", tmp_path / "profile")
        if img is None:
            pytest.skip("chromium wrote no screenshot (headless mode unavailable here)")
        rgb = img[..., :3].astype(int)
        assert (rgb < 240).any(axis=2).mean() > 0.01, f"{page}: screenshot is (almost) blank"
        # the chart colours are drawn: latency blue #1f77b4 (sparklines, latency charts)
        blue = ((abs(rgb[..., 0] - 0x1f) < 30) & (abs(rgb[..., 1] - 0x77) < 30)
                & (abs(rgb[..., 2] - 0xb4) < 30)).sum()
        assert blue > 50, f"{page}: no chart drawn"
