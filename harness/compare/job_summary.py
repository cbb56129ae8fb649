"""A Markdown job summary for CI (GitHub's `$GITHUB_STEP_SUMMARY`, GitLab's report pages).

It leads with the gate's result and its reasons, then lists only what failed: the pairs with a
gated verdict (with the numbers), the configurations measured on one side only when
`missing` is gated, and the run's failed configurations; then the verdict counts and, for a
sweep, where the full report is.
"""

from __future__ import annotations

from ..status import failed
from ..terminal import terminal_safe
from .gate import Gate, configurations
from .junit import describe
from .render import _md_escape, _md_table, missing_frame, summary_line
from .result import ASPECTS, CompareResult


def to_job_summary(gate: Gate, result: CompareResult | None = None,
                   run_rows: list[dict] | None = None, what: str = "harness",
                   report: str | None = None) -> str:
    """Markdown text: `## WHAT: gate passed|FAILED`, the reasons, the failing items."""
    head = "passed" if gate.passed else "FAILED"
    spec = ", ".join(sorted(gate.fail_on)) or "nothing"
    out = [f"## {_md_escape(what)}: gate {head}", "", f"Gated verdicts: {spec}."]
    if gate.reasons():
        out += [""] + [f"- {_md_escape(r)}" for r in gate.reasons()]
    if result is None and gate.compared is False:
        out += ["", "_Nothing to compare with (the first run of this tag)._"]
    if result is not None:
        out += ["", f"**{_md_escape(summary_line(result))}**"]
        bad = result.failures(gate.fail_on) if gate.fail_on else result.pairs.iloc[0:0]
        if len(bad):
            out += ["", f"### Failing pairs ({len(bad)})", ""]
            for _, p in bad.iterrows():
                key = " ".join(f"{k}={p[k]}" for k in result.key)
                out.append(f"- `{_md_escape(key)}`")
                out += [f"  - {_md_escape(describe(p, a, result.base, result.head))}"
                        for a in ASPECTS if p[a] in gate.fail_on]
        if "missing" in gate.fail_on and len(result.missing):
            out += ["", f"### Measured on one side only ({len(result.missing)})", "",
                    _md_table(missing_frame(result))]
    if run_rows:
        bad_cfg = [(k, rows) for k, rows in configurations(run_rows).items()
                   if any(failed(r) for r in rows)]
        if bad_cfg:
            out += ["", f"### Failed configurations of the run ({len(bad_cfg)})", ""]
            for _, rows in bad_cfg:
                r0 = rows[0]
                statuses = ", ".join(sorted({str(r.get("status")) for r in rows}))
                err = next((str(r["error"]) for r in rows if failed(r) and r.get("error")), "")
                out.append(f"- `{_md_escape(r0.get('model'))}` {_md_escape(r0.get('engine'))} "
                           f"{_md_escape(r0.get('engine_version'))} "
                           f"{_md_escape(r0.get('backend_requested'))}/"
                           f"{_md_escape(r0.get('precision_requested'))} "
                           f"{r0.get('threads')} threads: {_md_escape(statuses)}"
                           + (f": {_md_escape(err[:200])}" if err else ""))
    if report:
        out += ["", f"Full report: `{_md_escape(report)}`"]
    return terminal_safe("\n".join(out) + "\n")
