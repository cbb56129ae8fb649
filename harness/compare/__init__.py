"""Comparing measurements: statistics, verdicts, reports, history and change points.

    from harness.results import load
    from harness.compare import compare
    df = load("results", engine="mnn", engine_version=["3.4.0", "3.6.1"])
    res = compare(df, "engine_version", "3.4.0", "3.6.1")
    print(res.to_table()); res.exit_code({"slower", "larger", "wrong"})

Modules: stats (Mann–Whitney U, quantiles, hierarchical bootstrap), verdicts (Thresholds and
the rules), pairing (series keys, sides, missing pairs), core (compare), result
(CompareResult, gate), render (terminal/Markdown/JSON), svg + html (self-contained report),
history (metric across sweeps, change points), sweeps (previous sweep, report files),
load (the rows a comparison or a history reads), synthetic (rows for tests and benchmarks).
The `compare` and `history` commands are harness/cli/compare.py and history.py.
"""

from .core import compare
from .history import change_points, history
from .result import CompareResult, parse_fail_on
from .sweeps import compare_with_previous, write_report
from .verdicts import Thresholds

__all__ = ["CompareResult", "Thresholds", "change_points", "compare", "compare_with_previous",
           "history", "parse_fail_on", "write_report"]
