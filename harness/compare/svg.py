"""Hand-written SVG charts (no plotting library): axes, ticks, points, whiskers, lines, legend.

Output is inline <svg> for HTML5 documents (no xmlns attribute, no external references), so
a report is one file that renders offline. Every data point is a <circle> or <rect> with
class "pt" and a <title> tooltip.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(v, 12))
        v += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    lo_e = math.floor(math.log10(lo))
    hi_e = math.ceil(math.log10(hi))
    step = max(1, math.ceil((hi_e - lo_e) / 6))
    return [10.0 ** e for e in range(lo_e, hi_e + 1, step)]


def fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:g}"


class Chart:
    """One chart. x is categorical (a list of labels; data x = label index) or numeric;
    y is linear or log. Build: Chart(...), then point/whisker/line/hline/text, then svg()."""

    def __init__(self, title: str, xlabel: str, ylabel: str, *, x_categories=None,
                 xlim=(0.0, 1.0), ylim=(0.0, 1.0), ylog: bool = False, width: int = 360,
                 height: int = 250, rotate_x: bool = False):
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.cats = list(x_categories) if x_categories is not None else None
        self.ylog = ylog
        self.w, self.h = width, height
        self.ml, self.mr, self.mt = 58, 12, 30
        self.mb = 84 if rotate_x else 40
        self.rotate_x = rotate_x
        ylo, yhi = ylim
        if ylog:
            ylo, yhi = max(ylo, 1e-300), max(yhi, ylo * 10)
            self.yticks = log_ticks(ylo, yhi)
            self.ylo, self.yhi = min(self.yticks[0], ylo), max(self.yticks[-1], yhi)
        else:
            self.yticks = nice_ticks(ylo, yhi)
            self.ylo, self.yhi = min(self.yticks[0], ylo), max(self.yticks[-1], yhi)
        if self.cats is not None:
            self.xlo, self.xhi = -0.5, len(self.cats) - 0.5
        else:
            self.xticks = nice_ticks(*xlim)
            self.xlo, self.xhi = min(self.xticks[0], xlim[0]), max(self.xticks[-1], xlim[1])
        self.items: list[str] = []
        self.legend_items: list[tuple[str, str, str]] = []
        self.n_points = 0

    # -- coordinates -------------------------------------------------------------------------
    def px(self, x: float, dx: float = 0.0) -> float:
        span = (self.xhi - self.xlo) or 1.0
        return self.ml + (x - self.xlo) / span * (self.w - self.ml - self.mr) + dx

    def py(self, y: float) -> float:
        if self.ylog:
            y = max(y, self.ylo)
            f = (math.log10(y) - math.log10(self.ylo)) / (
                (math.log10(self.yhi) - math.log10(self.ylo)) or 1.0)
        else:
            f = (y - self.ylo) / ((self.yhi - self.ylo) or 1.0)
        return self.h - self.mb - f * (self.h - self.mb - self.mt)

    # -- elements ----------------------------------------------------------------------------
    def point(self, x, y, color: str, tip: str, *, dx: float = 0.0, filled: bool = True,
              shape: str = "circle", series: str = "", r: float = 3.5, stroke: str | None = None):
        if y is None or not math.isfinite(y):
            return
        cx, cy = self.px(x, dx), self.py(y)
        fill = color if filled else "#fff"
        st = stroke or color
        attrs = f'class="pt" data-series="{escape(series)}" data-y="{y:.6g}"'
        if shape == "square":
            el = (f'<rect {attrs} x="{cx - r:.1f}" y="{cy - r:.1f}" width="{2 * r:.1f}" '
                  f'height="{2 * r:.1f}" fill="{fill}" stroke="{st}" stroke-width="1.5">')
            self.items.append(el + f"<title>{escape(tip)}</title></rect>")
        else:
            el = (f'<circle {attrs} cx="{cx:.1f}" cy="{cy:.1f}" r="{r}" fill="{fill}" '
                  f'stroke="{st}" stroke-width="1.5">')
            self.items.append(el + f"<title>{escape(tip)}</title></circle>")
        self.n_points += 1

    def whisker(self, x, y0, y1, color: str, *, dx: float = 0.0):
        if y0 is None or y1 is None or not (math.isfinite(y0) and math.isfinite(y1)):
            return
        cx = self.px(x, dx)
        a, b = self.py(y0), self.py(y1)
        self.items.append(
            f'<path d="M{cx:.1f} {a:.1f}V{b:.1f}M{cx - 4:.1f} {a:.1f}H{cx + 4:.1f}'
            f'M{cx - 4:.1f} {b:.1f}H{cx + 4:.1f}" stroke="{color}" stroke-width="1.2" '
            f'fill="none"/>')

    def line(self, pts, color: str, *, dx: float = 0.0, dash: str | None = None):
        pts = [(x, y) for x, y in pts if y is not None and math.isfinite(y)]
        if len(pts) < 2:
            return
        d = "M" + "L".join(f"{self.px(x, dx):.1f} {self.py(y):.1f}" for x, y in pts)
        da = f' stroke-dasharray="{dash}"' if dash else ""
        self.items.append(f'<path d="{d}" stroke="{color}" stroke-width="1.4" fill="none"{da}/>')

    def hline(self, y: float, color: str, label: str = "", dash: str = "4 3"):
        if y is None or not math.isfinite(y) or not (self.ylo <= y <= self.yhi):
            return
        yy = self.py(y)
        self.items.append(f'<line x1="{self.ml}" x2="{self.w - self.mr}" y1="{yy:.1f}" '
                          f'y2="{yy:.1f}" stroke="{color}" stroke-dasharray="{dash}"/>')
        if label:
            self.items.append(f'<text x="{self.w - self.mr - 2}" y="{yy - 3:.1f}" '
                              f'text-anchor="end" class="lab" fill="{color}">'
                              f'{escape(label)}</text>')

    def vline(self, x: float, color: str, label: str = "", dash: str = "4 3"):
        """A vertical reference line at data x (numeric axes), with a label at its top."""
        if x is None or not math.isfinite(x) or not (self.xlo <= x <= self.xhi):
            return
        xx = self.px(x)
        self.items.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{self.mt}" '
                          f'y2="{self.h - self.mb}" stroke="{color}" stroke-dasharray="{dash}"/>')
        if label:
            self.items.append(f'<text x="{xx + 3:.1f}" y="{self.mt + 10}" class="lab" '
                              f'fill="{color}">{escape(label)}</text>')

    def text(self, x, y, s: str, color: str = "#333", *, dx: float = 0.0, dy: float = -8.0):
        if y is None or not math.isfinite(y):
            return
        self.items.append(f'<text x="{self.px(x, dx):.1f}" y="{self.py(y) + dy:.1f}" '
                          f'text-anchor="middle" class="lab" fill="{color}">{escape(s)}</text>')

    def legend(self, label: str, color: str, style: str = "dot"):
        self.legend_items.append((label, color, style))

    # -- output ------------------------------------------------------------------------------
    def _axes(self) -> list[str]:
        x0, x1 = self.ml, self.w - self.mr
        y0, y1 = self.h - self.mb, self.mt
        out = [f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fafafa" '
               f'stroke="#999"/>']
        for t in self.yticks:
            if not (self.ylo <= t <= self.yhi):
                continue
            yy = self.py(t)
            out.append(f'<line x1="{x0}" x2="{x1}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e3e3e3"/>')
            out.append(f'<text x="{x0 - 4}" y="{yy + 3.5:.1f}" text-anchor="end" class="tick">'
                       f'{escape(fmt_tick(t))}</text>')
        if self.cats is not None:
            xt = [(i, str(c)) for i, c in enumerate(self.cats)]
        else:
            xt = [(t, fmt_tick(t)) for t in self.xticks if self.xlo <= t <= self.xhi]
        for v, lab in xt:
            xx = self.px(v)
            out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{y0}" y2="{y0 + 4}" stroke="#999"/>')
            if self.rotate_x:
                lab = lab if len(lab) <= 22 else lab[:21] + "…"
                out.append(f'<text transform="translate({xx + 3:.1f},{y0 + 8}) rotate(-40)" '
                           f'text-anchor="end" class="tick">{escape(lab)}</text>')
            else:
                out.append(f'<text x="{xx:.1f}" y="{y0 + 15}" text-anchor="middle" class="tick">'
                           f'{escape(lab)}</text>')
        out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{self.h - 4}" text-anchor="middle" '
                   f'class="axis">{escape(self.xlabel)}</text>')
        out.append(f'<text transform="translate(13,{(y0 + y1) / 2:.1f}) rotate(-90)" '
                   f'text-anchor="middle" class="axis">{escape(self.ylabel)}</text>')
        out.append(f'<text x="{self.w / 2:.1f}" y="16" text-anchor="middle" class="title">'
                   f'{escape(self.title)}</text>')
        return out

    def _legend(self) -> tuple[list[str], int]:
        """Legend rows below the x-axis label (never over the data); returns (elements,
        extra height)."""
        out = []
        x0, x_max = self.ml, self.w - self.mr
        x, y = x0, self.h + 10
        rows = 1 if self.legend_items else 0
        for label, color, style in self.legend_items:
            width = 22 + 5.6 * len(label) + 10
            if x > x0 and x + width > x_max:
                x, y, rows = x0, y + 14, rows + 1
            if style == "dash":
                out.append(f'<line x1="{x}" x2="{x + 14}" y1="{y - 4}" y2="{y - 4}" '
                           f'stroke="{color}" stroke-width="2" stroke-dasharray="4 2"/>')
            elif style == "line":
                out.append(f'<line x1="{x}" x2="{x + 14}" y1="{y - 4}" y2="{y - 4}" '
                           f'stroke="{color}" stroke-width="2"/>')
            elif style == "hollow":
                out.append(f'<circle cx="{x + 7}" cy="{y - 4}" r="3.5" fill="#fff" '
                           f'stroke="{color}" stroke-width="1.5"/>')
            elif style == "square":
                out.append(f'<rect x="{x + 3.5}" y="{y - 7.5}" width="7" height="7" '
                           f'fill="{color}"/>')
            else:
                out.append(f'<circle cx="{x + 7}" cy="{y - 4}" r="3.5" fill="{color}"/>')
            out.append(f'<text x="{x + 18}" y="{y}" class="leg">{escape(label)}</text>')
            x += width
        return out, (14 * rows + 8 if rows else 0)

    def svg(self) -> str:
        legend, extra = self._legend()
        body = "".join(self._axes() + self.items + legend)
        h = self.h + extra
        return (f'<svg class="chart" width="{self.w}" height="{h}" '
                f'viewBox="0 0 {self.w} {h}" role="img" aria-label="{escape(self.title)}">'
                f'<title>{escape(self.title)}</title>{body}</svg>')
