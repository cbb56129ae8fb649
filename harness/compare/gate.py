"""The CI gate: whether a comparison (and, for a sweep, its run) passes, and why not.

One place decides the exit code's reasons, so the terminal line, the JSON report, the JUnit
file and the Markdown job summary all say the same thing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..status import FAILED, failed, worst
from .result import ASPECTS, CompareResult, parse_fail_on


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Gate:
    """The gate's result.

    `verdicts`: for each `--fail-on` verdict that occurred, the number of pairs with it in any
    aspect (latency, memory, correctness; `missing`: pairs measured on one side only).
    `run_failed`: for a sweep, the failed configurations of its own run by status (a row is
    failed as `harness.status.failed` says: a failed status, or outputs `wrong`/`nan`);
    `configurations` is how many the run had."""

    fail_on: frozenset[str]
    verdicts: dict[str, int] = field(default_factory=dict)
    run_failed: dict[str, int] = field(default_factory=dict)
    configurations: int = 0
    compared: bool = True

    @property
    def passed(self) -> bool:
        return not self.verdicts and not self.run_failed

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def reasons(self) -> list[str]:
        """One phrase per reason, e.g. ['2 pairs slower', 'run: 1 of 4 configurations failed
        (1 timeout)']; empty when the gate passed."""
        out = [f"{_plural(n, 'pair')} {v}" for v, n in sorted(self.verdicts.items())]
        if self.run_failed:
            n = sum(self.run_failed.values())
            detail = ", ".join(f"{c} {s}" for s, c in sorted(self.run_failed.items()))
            out.append(f"run: {n} of {_plural(self.configurations, 'configuration')} failed "
                       f"({detail})")
        return out

    def line(self, what: str) -> str:
        """`WHAT: gate passed` or `WHAT: gate FAILED (exit 1): 2 pairs slower; ...`."""
        spec = ",".join(sorted(self.fail_on)) or "nothing"
        if self.passed:
            return f"{what}: gate passed (--fail-on {spec})"
        return f"{what}: gate FAILED (exit 1, --fail-on {spec}): " + "; ".join(self.reasons())

    def as_dict(self) -> dict:
        return {"passed": self.passed, "exit_code": self.exit_code,
                "fail_on": sorted(self.fail_on), "reasons": self.reasons(),
                "verdicts": dict(sorted(self.verdicts.items())),
                "run_failed": dict(sorted(self.run_failed.items())),
                "configurations": self.configurations, "compared": self.compared}


def configurations(rows: list[dict]) -> dict[tuple, list[dict]]:
    """A run's rows grouped by requested configuration (the summary's key)."""
    from ..summary import KEYS
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(tuple(r.get(k) for k in KEYS), []).append(r)
    return out


def failure_kind(rows: list[dict]) -> str:
    """What failed in a configuration's rows, worst first (`harness.status.worst`): a failed
    status, or for a measured row the output verdict that failed it (`wrong`, `nan/inf`, not
    `ok`); '' when no row failed."""
    return worst(r["status"] if r.get("status") in FAILED else r.get("verdict")
                 for r in rows if failed(r))


def evaluate(result: CompareResult | None, fail_on, run_rows: list[dict] | None = None) -> Gate:
    """The gate over `result` (None: nothing to compare with) and, for a sweep, the rows of
    its own run. A configuration counts as failed once, under the worst of its failed rows'
    statuses (or output verdicts: `wrong`, `nan/inf`) by `harness.status.worst`. Raises
    InputError for an unknown `fail_on` verdict."""
    fail = parse_fail_on(fail_on)
    verdicts: Counter = Counter()
    if result is not None:
        if len(result.pairs):
            for _, p in result.pairs.iterrows():
                for v in {str(p[a]) for a in ASPECTS} & fail:
                    verdicts[v] += 1
        if "missing" in fail and len(result.missing):
            verdicts["missing"] += len(result.missing)
    run_failed: Counter = Counter()
    groups = configurations(run_rows or [])
    for rows in groups.values():
        kind = failure_kind(rows)
        if kind:
            run_failed[kind] += 1
    return Gate(fail_on=fail, verdicts={k: v for k, v in verdicts.items() if v},
                run_failed=dict(run_failed), configurations=len(groups),
                compared=result is not None)
