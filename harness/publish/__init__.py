"""The trend site (`harness publish`): every configuration series of a dataset across sweeps,
as static HTML that opens from disk, in the manner of asv's `publish`.

API:
    from harness.publish import publish
    counts = publish("results", "site")   # {"series": N, "pages": N + 1, "reports": M}

series.py builds the series (runs in time order, change points from harness.compare.history);
site.py writes the pages.
"""

from __future__ import annotations

from pathlib import Path

from .series import Series, build_series, load_series
from .site import write_site


def publish(data: str | Path, out: str | Path, filters: dict[str, list[str]] | None = None,
            **cp_opts) -> dict[str, int]:
    """Write the trend site of the dataset at `data` (rows matching `filters`) to `out`.
    `cp_opts`: change-point options of harness.compare.history.change_points. Returns counts
    (series, pages, reports). Raises DatasetError for a missing or empty dataset, InputError
    for an `out` that is not a new, empty or earlier site directory."""
    return write_site(load_series(data, filters, **cp_opts), data, out)


__all__ = ["Series", "build_series", "load_series", "publish", "write_site"]
