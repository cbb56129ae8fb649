"""A self-contained HTML page for one diagnosis: per-layer errors, the culprit, the fix."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from ..store.atomic import atomic_write_bytes
from ..compare.html import CSS
from ..compare.render import fmt_g
from ..compare.svg import Chart

_OK, _BAD, _CULPRIT, _INHERIT = "#2a7", "#c33", "#000", "#e80"
_OFF_TOP = 1e6


def _err(t) -> float | None:
    """A per-tensor error for the log plot: rel err, or 1 − cosine when only that exists."""
    if t.rel_err is not None and math.isfinite(t.rel_err):
        return max(t.rel_err, 1e-12)
    if t.rel_err is not None:  # inf / nan: off the top of the chart, labelled there
        return _OFF_TOP
    if t.cosine is not None and math.isfinite(t.cosine):
        return max(1 - t.cosine, 1e-12)
    return None


def layer_chart(d) -> str:
    layers = [lay for lay in d.analysis.layers if lay.compared]
    if not layers:
        return "<p>No layer could be compared.</p>"
    culprit = d.culprit.name if d.culprit else None
    inheritors = set(d.inheritors)
    vals = [v for lay in layers if (v := _err(lay.worst)) is not None]
    tol = d.analysis.tolerance.rel_err or 1e-3
    ch = Chart(f"{d.model} on {d.engine} {d.engine_version}: error per layer vs {d.reference}",
               "layer (topological order)", "rel err (log)", x_categories=[f"#{lay.index}" for lay in layers],
               ylim=(min(vals + [tol]) / 10, max(vals + [tol]) * 10), ylog=True,
               width=760, height=300, rotate_x=len(layers) > 12)
    for pos, lay in enumerate(layers):
        v = _err(lay.worst)
        if v is None:
            continue
        color = (_CULPRIT if lay.name == culprit else _INHERIT if lay.name in inheritors
                 else _BAD if lay.diverged else _OK)
        if v == _OFF_TOP:  # not a number on the axis: say what it is at the top
            ch.text(pos, v, fmt_g(lay.worst.rel_err), _BAD, dy=-9)
        ch.point(pos, v, color, f"#{lay.index} {lay.name} ({lay.type}): "
                 f"rel err {fmt_g(lay.worst.rel_err)}, cosine {fmt_g(lay.worst.cosine, 6)}",
                 r=6 if lay.name == culprit else 3.5, series=lay.name)
    ch.hline(tol, "#c33", f"tolerance {tol:g}")
    ch.legend("within tolerance", _OK)
    ch.legend("first divergent layer (culprit)", _CULPRIT)
    ch.legend("inherits the error", _INHERIT)
    return ch.svg()


def diagnosis_html(d, text_report: str) -> str:
    rows = []
    for lay in d.analysis.layers:
        t = lay.worst
        if t is None or not lay.compared:
            continue
        role = ("culprit" if d.culprit is not None and lay.name == d.culprit.name else
                "inherits" if lay.name in d.inheritors else "diverged" if lay.diverged else "ok")
        if role == "ok" and len(rows) > 200:
            continue
        rows.append(f"<tr class='{role}'><td>{lay.index}</td><td>{escape(lay.name)}</td>"
                    f"<td>{escape(lay.type)}</td><td>{role}</td><td>{fmt_g(t.max_abs_err)}</td>"
                    f"<td>{fmt_g(t.rel_err)}</td><td>{fmt_g(t.cosine, 6)}</td>"
                    f"<td>{escape(t.reason or '')}</td></tr>")
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>harness diagnose {escape(d.diagnosis_id)}</title>
<style>{CSS}
pre{{background:#f6f6f6;padding:8px;overflow-x:auto}}
tr.culprit{{background:#fdd;font-weight:bold}} tr.inherits{{background:#fed}}</style></head><body>
<h1>diagnose: {escape(d.model)} on {escape(d.engine)} {escape(d.engine_version)}</h1>
<p>suspect {escape(d.suspect.backend)}/{escape(d.suspect.precision)}/{d.suspect.threads}t
(ran as {escape(d.ran_as[0])}/{escape(d.ran_as[1] or '')}) vs {escape(d.reference)} on host
{escape(d.host)}</p>
{layer_chart(d)}
<h2>Report</h2><pre>{escape(text_report)}</pre>
<h2>Layers</h2><table><tr><th>#</th><th>layer</th><th>type</th><th>role</th>
<th>max abs err</th><th>rel err</th><th>cosine</th><th>reason</th></tr>{''.join(rows)}</table>
</body></html>"""


def write_html(d, text_report: str, out_dir: Path) -> Path:
    path = Path(out_dir) / "_diagnoses" / "_reports" / f"{d.diagnosis_id}.html"
    atomic_write_bytes(path, diagnosis_html(d, text_report).encode())
    return path
