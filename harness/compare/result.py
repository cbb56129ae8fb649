"""CompareResult: the matched pairs with their statistics and verdicts, plus the gate."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..errors import InputError
from .verdicts import GATE_VERDICTS, Thresholds

ASPECTS = ("latency", "memory", "correctness")


def parse_fail_on(spec) -> frozenset[str]:
    """'slower,larger,wrong' (or an iterable) -> a validated set of verdict names."""
    if spec is None:
        return frozenset()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = {str(s).strip() for s in items if str(s).strip()}
    bad = sorted(out - set(GATE_VERDICTS))
    if bad:
        raise InputError(f"--fail-on {bad[0]!r}", "is not a gate verdict", ",".join(GATE_VERDICTS))
    return frozenset(out)


@dataclass
class CompareResult:
    """One row per matched pair in `pairs` (key columns, then statistics and verdicts):

    latency: n_base/n_head (samples), rows_base/rows_head, median/p10/p90 per side (ms),
      ratio (median head / median base), ci_low/ci_high (CI of the ratio), ci_method
      ("bootstrap" with `resamples` replicates, "normal" for the process-level approximation
      on pairs with > 50 processes per side, "" when none was computed), p_slower/p_faster
      (one-sided Mann–Whitney), cv_base/cv_head,
      latency (verdict), latency_note;
    memory, per phase ph in load/first/steady: rss_{ph}_base/_head (median peak kB),
      rss_{ph}_delta_kb, rss_{ph} (verdict; `insufficient` under thresholds.rss_min_processes
      processes a side, said in latency_note); memory = the worst phase verdict;
    correctness: rel_err_base/_head (worst; inf when an output is NaN or infinitely off, NaN
      without a reference), cosine_base/_head (worst), nan_inf_base/_head,
      correctness (verdict), correctness_note.
    `missing` lists keys that have measured rows on one side only (statuses per side)."""

    dimension: str
    base: str
    head: str
    key: list[str]
    thresholds: Thresholds
    pairs: pd.DataFrame
    missing: pd.DataFrame
    info: dict = field(default_factory=dict)

    # -- verdict bookkeeping -----------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for a in ASPECTS:
            vc = self.pairs[a].value_counts() if len(self.pairs) else {}
            out[a] = {str(k): int(v) for k, v in dict(vc).items()}
        out["missing"] = {"pairs": int(len(self.missing))}
        return out

    def failures(self, fail_on) -> pd.DataFrame:
        """Pairs with a verdict in fail_on (any aspect)."""
        fail = parse_fail_on(fail_on)
        if not len(self.pairs):
            return self.pairs
        hit = pd.Series(False, index=self.pairs.index)
        for a in ASPECTS:
            hit |= self.pairs[a].isin(fail)
        return self.pairs[hit]

    def exit_code(self, fail_on) -> int:
        """1 if any pair has a verdict in fail_on ('missing' counts missing pairs), else 0."""
        fail = parse_fail_on(fail_on)
        if "missing" in fail and len(self.missing):
            return 1
        return 1 if len(self.failures(fail)) else 0

    @property
    def label(self) -> str:
        return f"{self.dimension}: {self.base} → {self.head}"

    # -- outputs -----------------------------------------------------------------------------
    def to_dict(self, gate=None) -> dict:
        """The JSON document; `gate` (a `harness.compare.gate.Gate`) adds "gate"."""
        from .render import to_dict
        return to_dict(self, gate)

    def to_json(self, indent: int | None = 2, gate=None) -> str:
        from .render import to_json
        return to_json(self, indent=indent, gate=gate)

    def to_markdown(self, max_rows: int | None = None) -> str:
        from .render import to_markdown
        return to_markdown(self, max_rows=max_rows)

    def to_table(self, max_rows: int | None = None) -> str:
        from .render import to_table
        return to_table(self, max_rows=max_rows)

    def to_html(self, title: str | None = None) -> str:
        from .html import to_html
        return to_html(self, title=title)

    def render(self, fmt: str = "table", gate=None) -> str:
        fmt = {"md": "markdown", "text": "table"}.get(fmt, fmt)
        if fmt == "table":
            return self.to_table()
        if fmt == "markdown":
            return self.to_markdown()
        if fmt == "json":
            return self.to_json(gate=gate)
        if fmt == "html":
            return self.to_html()
        raise InputError(f"--format {fmt!r}", "is unknown", "table, markdown, json or html")

    def __str__(self) -> str:
        return self.to_table()
