"""Which rows are compared with which: dimension, series key, base/head sides, missing pairs.

A pair is one series key (the configuration held equal) with measured rows on both sides.
The key is SERIES_KEY minus the dimension under test, adjusted per dimension:
  engine_version        model, input_shape, engine, backend, precision, threads,
                        cores_requested, cores, host
  cores                 ... cores_requested (all, big, little, "0-3") is under test
  host                  ... with engine_version added, and cores dropped (a host property)
  precision / backend   ... with engine_version added; precision also by the head's
                        ``calibration`` (each quantization of the head apart, the base's
                        rows paired with each: _per_quantization)
  run_id / sweep_tag    ... with engine_version_requested added: two nightly runs of
                        "installed" pair up even if the installed version changed (noted)
Key values come from the effective columns (backend, precision, engine_version), filled from
the *_requested column where the effective one is empty (rows that failed before loading).
The version of a row built from source is its build's label (``engine_build``), so a wheel
and a source build of one release are two versions; ``--base``/``--head`` may also name a
build by the start (7+ characters) of its source identity (commit id or tarball sha256).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from harness_agent.engines.base import QUANTIZED

from ..errors import InputError
from ..results import DatasetError
from ..status import MEASURED

# cores: the host's CPU count; cores_requested: the suite's core pinning (all, big, ...)
SERIES_KEY = ("model", "input_shape", "engine", "backend", "precision", "threads",
              "cores_requested", "cores", "host")
DIMENSIONS = {
    "engine_version": "engine_version", "version": "engine_version",
    "host": "host", "precision": "precision", "backend": "backend",
    "run_id": "run_id", "run": "run_id", "sweep": "run_id",
    "sweep_tag": "sweep_tag", "tag": "sweep_tag",
    "cores": "cores_requested", "cores_requested": "cores_requested",
}
FALLBACK = {"engine_version": "engine_version_requested", "backend": "backend_requested",
            "precision": "precision_requested"}


def dimension_column(dimension: str) -> str:
    try:
        return DIMENSIONS[dimension]
    except KeyError:
        raise InputError(f"dimension {dimension!r}", "is not comparable",
                         ", ".join(sorted(set(DIMENSIONS)))) from None


def key_columns(dimension: str) -> list[str]:
    col = dimension_column(dimension)
    key = list(SERIES_KEY)
    if col != "engine_version":
        extra = "engine_version_requested" if col in ("run_id", "sweep_tag") else "engine_version"
        key.insert(key.index("engine") + 1, extra)
    if col == "host":
        key.remove("cores")
    if col in key:
        key.remove(col)
    return key


def effective(df: pd.DataFrame, name: str) -> pd.Series:
    """Column `name`, with nulls filled from its *_requested column where there is one; for
    engine_version, a source build's label (engine_build) where there is one; for precision,
    the request where it was a quantized one (int8, int8-weight: another model file, which
    stays apart from the float model's rows even where it ran in float)."""
    if name not in df.columns:
        return pd.Series([np.nan] * len(df), index=df.index, dtype=object)
    s = df[name]
    if name == "engine_version" and "engine_build" in df.columns and df["engine_build"].notna().any():
        built = df["engine_build"].astype(object)
        s = built.where(built.notna(), s.astype(object))
    if name == "precision" and "precision_requested" in df.columns:
        asked = df["precision_requested"].astype(object)
        s = s.astype(object).where(~asked.isin(QUANTIZED), asked)
    fb = FALLBACK.get(name)
    if fb is None or fb not in df.columns or not s.isna().any():
        return s
    return s.astype(object).where(s.notna(), df[fb].astype(object))


def factorize_rows(columns: dict[str, pd.Series]) -> tuple[np.ndarray, pd.DataFrame]:
    """Group id per row for the combination of `columns` (nulls are a value of their own),
    and one row of key values per group (Python objects, for display and sorting)."""
    gid = None
    for s in columns.values():
        codes, uniq = pd.factorize(s, use_na_sentinel=False)
        codes = codes.astype(np.int64)
        if gid is None:
            gid = codes
        else:
            gid, _ = pd.factorize(gid * (len(uniq) + 1) + codes)
            gid = gid.astype(np.int64)
    n = len(next(iter(columns.values()))) if columns else 0
    if gid is None:
        gid = np.zeros(n, dtype=np.int64)
    first = np.full(gid.max() + 1 if n else 0, -1, dtype=np.int64)
    first[gid[::-1]] = np.arange(n - 1, -1, -1)  # first row of each group
    keys = pd.DataFrame({c: s.iloc[first].to_numpy(dtype=object)
                         for c, s in columns.items()})
    return gid, keys


def _fmt_counts(pairs) -> str:
    return " ".join(f"{k}×{v}" for k, v in pairs) if pairs else "absent"


def source_prefix(value: str) -> str | None:
    """The hex prefix a --base/--head value names a source build by ("225a6e44",
    "sha256:225A6E44", "git:0123abc"), lower case; None when it is not one (7+ hex digits)."""
    v = value.strip().lower()
    for kind in ("sha256:", "git:"):
        v = v.removeprefix(kind)
    return v if len(v) >= 7 and all(c in "0123456789abcdef" for c in v) else None


def _side_mask(df: pd.DataFrame, col: str, dim: pd.Series, value: str) -> np.ndarray:
    """Rows whose ``dim`` is ``value``; for versions, else rows whose source identity starts
    with ``value`` (a commit id or tarball digest, 7 characters at least). Raises InputError
    when the prefix matches builds of more than one label (one tarball, other options)."""
    mask = (dim == value).to_numpy(dtype=bool, na_value=False)
    prefix = source_prefix(value)
    if mask.any() or col != "engine_version" or "engine_source" not in df.columns \
            or prefix is None:
        return mask
    ident = df["engine_source"].astype(object).map(
        lambda x: x.split(":", 1)[-1] if isinstance(x, str) else "")
    mask = ident.str.startswith(prefix).to_numpy(dtype=bool, na_value=False)
    labels = sorted(set(dim[mask].dropna().astype(str)))
    if len(labels) > 1:
        raise InputError(f"--base/--head {value!r}", f"matches the builds {', '.join(labels)}",
                         "one of those labels")
    return mask


@dataclass
class Pairing:
    column: str               # dataset column under test
    base: str
    head: str
    key: list[str]
    rows: pd.DataFrame        # rows of both sides (no latency_ms); _pos (position in the
                              # input frame), _side 0/1, _pair (-1: not compared)
    keys: pd.DataFrame        # one row of key values per pair, index = pair id
    missing: pd.DataFrame     # keys without measured rows on a side, with per-side statuses


def _per_quantization(rows: pd.DataFrame, pos: np.ndarray, side: np.ndarray, key: list[str]):
    """A precision comparison pairs the base (float) rows with each quantization of the head
    apart: head rows of one configuration quantized with other calibration data (or by
    another tool) are other model files, and pooled they would mix their latencies and
    report the worst one's accuracy. Each base row is repeated once per distinct
    ``calibration`` of the head rows of its configuration (none: once, as it is), and takes
    that value as its own for the key. Returns (rows, pos, side)."""
    if "calibration" not in rows.columns:
        rows = rows.assign(calibration=None)
    cal = rows["calibration"].astype(object).where(rows["calibration"].notna(), None)
    gid, _ = factorize_rows({c: effective(rows, c) for c in key})
    variants: dict[int, list] = {}
    for g, c, sd in zip(gid, cal, side):
        if sd == 1 and c not in variants.setdefault(int(g), []):
            variants[int(g)].append(c)
    take, values = [], []
    for i, (g, c, sd) in enumerate(zip(gid, cal, side)):
        for v in (variants.get(int(g)) or [c]) if sd == 0 else [c]:
            take.append(i)
            values.append(v)
    if len(take) == len(rows):  # nothing repeated: only the base's own values replaced
        return rows.assign(calibration=values), pos, side
    take_ = np.asarray(take, dtype=np.int64)
    out = rows.iloc[take_].assign(calibration=values).reset_index(drop=True)
    return out, pos[take_], side[take_]


def pair_rows(df: pd.DataFrame, dimension: str, base, head, engine: str | None = None) -> Pairing:
    col = dimension_column(dimension)
    base, head = str(base), str(head)
    if base == head:
        raise InputError(f"--base/--head {base!r}", "are the same", "two different values")
    # the bulky list column stays behind (core.py reads it by position: rows["_pos"])
    pos = np.arange(len(df))
    df = df.drop(columns=[c for c in ("latency_ms",) if c in df.columns])
    if engine is not None:
        sel = (df["engine"] == engine).to_numpy(dtype=bool, na_value=False)
        df, pos = df[sel], pos[sel]
        if df.empty:
            raise DatasetError(f"engine {engine!r}", "has no rows in the data")
    if col not in df.columns:
        raise DatasetError(f"dimension {col!r}", "is not a column of the data")
    dim = effective(df, col)
    is_base = _side_mask(df, col, dim, base)
    is_head = _side_mask(df, col, dim, head)
    for name, mask in (("base", is_base), ("head", is_head)):
        if not mask.any():
            have = sorted(map(str, pd.unique(dim.dropna())))
            shown = ", ".join(have[:12]) + (" …" if len(have) > 12 else "")
            raise DatasetError(f"{name} {col}={base if name == 'base' else head!r}",
                               "has no rows in the data", f"one of: {shown or 'nothing'}")
    keep = is_base | is_head
    rows = df[keep]
    pos = pos[keep]
    side = is_head[keep].astype(np.int8)
    key = key_columns(dimension)
    if col == "precision":
        rows, pos, side = _per_quantization(rows, pos, side, key)
        key = key + ["calibration"]
    gid, uniq = factorize_rows({c: effective(rows, c) for c in key})
    n_groups = len(uniq)
    measured = rows["status"].isin(MEASURED).to_numpy(dtype=bool, na_value=False)
    m_base = np.bincount(gid[measured & (side == 0)], minlength=n_groups)
    m_head = np.bincount(gid[measured & (side == 1)], minlength=n_groups)
    paired = (m_base > 0) & (m_head > 0)

    ranks = []
    for c in key:  # sort keys: per-column dense ranks (nulls last), then one lexsort
        v = uniq[c]
        try:
            r = pd.Series(v.to_numpy(dtype=object)).rank(method="dense", na_option="bottom")
        except TypeError:  # mixed types in one column: order by their text
            r = pd.Series(v.map(str)).rank(method="dense")
        ranks.append(r.to_numpy())
    rank_order = np.lexsort(ranks[::-1]) if ranks else np.arange(n_groups)
    position = np.empty(n_groups, dtype=np.int64)
    position[rank_order] = np.arange(n_groups)

    def order(groups: np.ndarray) -> np.ndarray:
        return groups[np.argsort(position[groups], kind="stable")]

    pair_groups = order(np.flatnonzero(paired))
    pair_of_group = np.full(n_groups, -1, dtype=np.int64)
    pair_of_group[pair_groups] = np.arange(len(pair_groups))
    rows = rows.assign(_pos=pos, _side=side, _group=gid,
                       _pair=np.where(measured, pair_of_group[gid], -1))
    keys = uniq.iloc[pair_groups].reset_index(drop=True)

    miss_groups = order(np.flatnonzero(~paired))
    missing = uniq.iloc[miss_groups].reset_index(drop=True)
    if len(miss_groups):
        sub = rows[np.isin(gid, miss_groups)]
        counts = sub.groupby(["_group", "_side", sub["status"].astype(object)],
                             observed=True).size()
        per = {}
        for (g, sd, st), v in counts.items():
            per.setdefault((g, sd), []).append((st, int(v)))
        missing["base"] = [_fmt_counts(per.get((g, 0))) for g in miss_groups]
        missing["head"] = [_fmt_counts(per.get((g, 1))) for g in miss_groups]
        missing["missing_on"] = ["base" if m_base[g] == 0 and m_head[g] > 0 else
                                 "head" if m_head[g] == 0 and m_base[g] > 0 else "both"
                                 for g in miss_groups]
    else:
        missing = missing.assign(base=[], head=[], missing_on=[])
    return Pairing(column=col, base=base, head=head, key=key, rows=rows, keys=keys,
                   missing=missing)
