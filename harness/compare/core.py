"""compare(): pair the rows, compute every pair's statistics at once, apply the verdicts.

Cost model (so a million-row dataset compares in seconds):
  * pairing is integer factorization of the key columns (pairing.py);
  * latency statistics for all pairs come from one sort of all samples (stats.grouped_latency):
    ranks, Mann–Whitney U, p10/median/p90 per side;
  * memory and correctness numbers are one pandas groupby over (pair, side); a phase's memory
    verdict needs `rss_min_processes` values per side (verdicts.memory_verdict);
  * the hierarchical bootstrap (the only per-pair loop) runs first for the *candidates*: pairs
    whose rank test and ratio already pass (verdict could become slower/faster). They get
    `resamples` replicates unless that would exceed `bootstrap_budget` drawn samples
    (stats.bootstrap_cost), in which case the replicates are scaled down to fit (never below
    `min_resamples`). The remaining budget buys CIs for the other pairs (for the report only;
    their verdict does not depend on it), scaled the same way; pairs left without budget get
    NaN CIs and resamples = 0;
  * a side with more than 50 processes (a comparison pooled over many sweeps) is resampled at
    the process level only, medians from a CDF grid (stats.bootstrap_medians_flat);
  * when both sides have more than 50 processes, a normal CI from the process-level spread
    (sd of log row medians / sqrt(rows)) is computed for every pair at once. If the
    candidates' bootstrap would not fit the budget even at min_resamples, a candidate whose
    decision that CI settles even with twice its half-width skips the bootstrap; pairs the
    budget leaves without a bootstrap CI get this one. `ci_method` says which
    ("bootstrap", "normal" or "" = none).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

from ..results import latency_arrays
from ..status import severity_rank
from .pairing import pair_rows
from .result import CompareResult
from .stats import (MAX_TWO_LEVEL, ranges, bootstrap_cost, bootstrap_ratio_ci_flat,
                    grouped_latency)
from .verdicts import (PHASES, Thresholds, correctness_verdict, latency_final, latency_prelim,
                       memory_verdict)

# worst first, in the one severity order
_MEMORY_ORDER = tuple(sorted(("larger", "insufficient", "smaller", "same"), key=severity_rank))


def _side_agg(frame: pd.DataFrame, n_pairs: int, spec: dict) -> dict[str, np.ndarray]:
    """groupby(pair, side) aggregations -> {name: (2, n_pairs) array}."""
    g = frame.groupby(["_pair", "_side"], sort=False, observed=True).agg(**spec)
    out = {}
    pidx = g.index.get_level_values(0).to_numpy()
    sidx = g.index.get_level_values(1).to_numpy().astype(np.int64)
    for name in spec:
        col = g[name]
        if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            arr = np.full((2, n_pairs), None, dtype=object)
            arr[sidx, pidx] = col.to_numpy(dtype=object)
        else:
            arr = np.full((2, n_pairs), np.nan)
            arr[sidx, pidx] = col.to_numpy(dtype=float, na_value=np.nan)
        out[name] = arr
    return out


def _num(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[name], errors="coerce").astype(float)


def _text(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series(None, index=frame.index, dtype=object)
    return frame[name].astype(object)


def _env_flags(rows: pd.DataFrame, th: Thresholds) -> tuple[np.ndarray, ...]:
    """Per row: governor changed, temperature rose > temp_rise_c, throttling recorded, CPU
    contention > max_contention."""
    gs, ge = _text(rows, "governor_start"), _text(rows, "governor_end")
    gov = (gs.notna() & ge.notna() & (gs.astype(str) != ge.astype(str))).to_numpy(dtype=bool)
    rise = (_num(rows, "temp_max_c_end") - _num(rows, "temp_max_c_start")).to_numpy()
    with np.errstate(invalid="ignore"):
        hot = rise > th.temp_rise_c
    thr = np.zeros(len(rows), dtype=bool)
    for c in ("notes", "extra_json"):
        if c in rows.columns:
            s = rows[c]
            nn = s.notna().to_numpy(dtype=bool)
            if nn.any():
                txt = s[nn].astype(str).str.lower()
                hit = txt.str.contains("throttl", regex=False)
                if c == "extra_json":  # a recorded "throttled": false is not throttling
                    hit &= ~txt.str.contains('"throttled": false', regex=False)
                thr[nn] = hit.to_numpy(dtype=bool)
    with np.errstate(invalid="ignore"):
        busy = _num(rows, "cpu_contention").to_numpy() > th.max_contention
    return gov, hot, thr, busy


def _core_latency_changed(rows: pd.DataFrame, pair_r: np.ndarray, side_r: np.ndarray,
                          n_pairs: int, th: Thresholds) -> list[tuple[int, str]]:
    """(pair, note) for the pairs whose multi-thread rows saw the machine's core-to-core
    latency (harness_agent.corelatency, each row's figure before and after it) change by more
    than a factor th.max_core_latency_change: within a row (its two figures), or between the
    sides (the median of each side's figures). Rows without figures count for nothing."""
    if "core_to_core_ns_start" not in rows.columns and "core_to_core_ns_end" not in rows.columns:
        return []
    start = _num(rows, "core_to_core_ns_start").to_numpy()
    end = _num(rows, "core_to_core_ns_end").to_numpy()
    multi = _num(rows, "threads").to_numpy() > 1
    limit = th.max_core_latency_change
    out = []
    with np.errstate(invalid="ignore", divide="ignore"):
        within = multi & (np.fmax(start, end) / np.fmin(start, end) > limit)
    cnt = [np.bincount(pair_r[within & (side_r == sd)], minlength=n_pairs) for sd in (0, 1)]
    for p in np.flatnonzero(cnt[0] + cnt[1]):
        sides = ", ".join(f"{name}×{cnt[sd][p]}" for sd, name in ((0, "base"), (1, "head"))
                          if cnt[sd][p])
        out.append((int(p), f"core-to-core latency changed during a measurement ({sides})"))
    frame = pd.DataFrame({"pair": np.tile(pair_r, 2), "side": np.tile(side_r, 2),
                          "ns": np.concatenate([start, end]), "multi": np.tile(multi, 2)})
    frame = frame[frame["multi"] & np.isfinite(frame["ns"]) & (frame["ns"] > 0)]
    if frame.empty:
        return out
    med = frame.groupby(["pair", "side"])["ns"].median().unstack("side")
    if 0 not in med.columns or 1 not in med.columns:
        return out
    ratio = np.fmax(med[0], med[1]) / np.fmin(med[0], med[1])
    for p in med.index[(ratio > limit).to_numpy()]:
        out.append((int(p), f"core-to-core latency {med.at[p, 0]:.0f} → {med.at[p, 1]:.0f} ns"))
    return out


def _groups_by_pair_side(pair: np.ndarray, side: np.ndarray, values: np.ndarray,
                         lengths: np.ndarray):
    """Accessor: (pair, side) -> (flat samples, samples per row), the rows of that side of
    that pair laid out contiguously (one reordering of all samples, then slices)."""
    code = pair * 2 + side
    order = np.argsort(code, kind="stable")
    sorted_code = code[order]
    lens = lengths[order]
    offs = np.cumsum(lengths) - lengths
    starts = offs[order]
    reordered = values[ranges(starts, starts + lens)] if len(values) else values
    new_offs = np.concatenate([[0], np.cumsum(lens)])

    def get(p: int, sd: int) -> tuple[np.ndarray, np.ndarray]:
        c = p * 2 + sd
        a, b = np.searchsorted(sorted_code, [c, c + 1])
        return reordered[new_offs[a]:new_offs[b]], lens[a:b]
    return get


def _process_level_ci(rows, values, lengths, pair_r, side_r, n_pairs, ratio, rows_n,
                      th: Thresholds):
    """Normal CI of the ratio for pairs with more than MAX_TWO_LEVEL processes per side:
    log ratio +- z sqrt(se_b^2 + se_h^2), se = sd(log row medians) / sqrt(rows). NaN elsewhere."""
    lo = np.full(n_pairs, np.nan)
    hi = np.full(n_pairs, np.nan)
    many = np.minimum(rows_n[0], rows_n[1]) > MAX_TWO_LEVEL
    if not many.any():
        return lo, hi
    if "median_ms" in rows.columns:  # the row's own median (rows.latency_stats, same samples)
        med = _num(rows, "median_ms").to_numpy()
    else:
        offs = np.cumsum(lengths) - lengths
        med = np.array([np.median(values[o:o + n]) if n else np.nan
                        for o, n in zip(offs, lengths)])
    with np.errstate(invalid="ignore", divide="ignore"):
        lr = np.log(med)
    ok = np.isfinite(lr) & many[pair_r]
    grp = pair_r[ok] * 2 + side_r[ok]
    c = np.bincount(grp, minlength=2 * n_pairs).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(grp, weights=lr[ok], minlength=2 * n_pairs) / c
        dev = lr[ok] - mean[grp]
        var = np.bincount(grp, weights=dev * dev, minlength=2 * n_pairs) / (c - 1)
        se2 = (var / c).reshape(n_pairs, 2).sum(axis=1)
        z = NormalDist().inv_cdf(0.5 + th.ci_level / 2.0)
        half = z * np.sqrt(se2)
        lo[many] = (ratio * np.exp(-half))[many]
        hi[many] = (ratio * np.exp(half))[many]
    return lo, hi


def compare(df: pd.DataFrame, dimension: str = "engine_version", base=None, head=None, *,
            engine: str | None = None, thresholds: Thresholds | None = None,
            **opts) -> CompareResult:
    """Compare `head` against `base` along `dimension` (engine_version, host, precision,
    backend, run_id/run/sweep, sweep_tag/tag). `opts` override Thresholds fields
    (alpha=0.05, resamples=500, ...). Only ok/fallback rows enter latency and memory."""
    th = (thresholds or Thresholds()).with_options(**opts)
    pr = pair_rows(df, dimension, base, head, engine=engine)
    keys = pr.keys
    n_pairs = len(keys)
    rows = pr.rows[pr.rows["_pair"].to_numpy() >= 0]
    pair_r = rows["_pair"].to_numpy(dtype=np.int64)
    side_r = rows["_side"].to_numpy(dtype=np.int64)

    # ---- latency ---------------------------------------------------------------------------
    pos = rows["_pos"].to_numpy(dtype=np.int64)
    if "latency_ms" in df.columns:
        values, lengths = latency_arrays(df["latency_ms"])
        if len(pos) != len(df) or not (pos == np.arange(len(df))).all():
            offs = np.cumsum(lengths) - lengths
            lengths = lengths[pos]
            values = values[ranges(offs[pos], offs[pos] + lengths)]
    else:
        values, lengths = np.empty(0), np.zeros(len(rows), dtype=np.int64)
    ok = np.isfinite(values) & (values >= 0)
    if not ok.all():  # drop bad samples; per-row counts follow
        lengths = np.bincount(np.repeat(np.arange(len(lengths)), lengths)[ok],
                              minlength=len(lengths))
        values = values[ok]
    s_pair = np.repeat(pair_r, lengths)
    s_side = np.repeat(side_r, lengths)
    lat = grouped_latency(values, s_pair, s_side, n_pairs, moments=th.cv_kind == "classic")
    del s_pair, s_side
    cv = lat.cv(th.cv_kind)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = lat.median[1] / lat.median[0]
    rows_n = np.vstack([np.bincount(pair_r[side_r == sd], minlength=n_pairs) for sd in (0, 1)])

    gov, hot, thr, busy = _env_flags(rows, th)
    busy_pair = np.bincount(pair_r[busy], minlength=n_pairs) > 0
    env = np.zeros(n_pairs, dtype=bool)
    notes: list[list[str]] = [[] for _ in range(n_pairs)]
    for flag, what in ((gov, "governor changed"), (hot, f"temp rose > {th.temp_rise_c:g}°C"),
                       (thr, "throttled"),
                       (busy, f"cpu contention > {100 * th.max_contention:g}%")):
        if flag.any():
            for sd, name in ((0, "base"), (1, "head")):
                cnt = np.bincount(pair_r[flag & (side_r == sd)], minlength=n_pairs)
                for p in np.flatnonzero(cnt):
                    notes[p].append(f"{what} ({name}×{cnt[p]})")
            env |= np.bincount(pair_r[flag], minlength=n_pairs) > 0

    for p, what in _core_latency_changed(rows, pair_r, side_r, n_pairs, th):
        notes[p].append(what)
        env[p] = True

    prelim = latency_prelim(lat.n[0], lat.n[1], cv[0], cv[1], env, lat.p_slower, lat.p_faster,
                            ratio, th, rows_n[0], rows_n[1])
    ci_low = np.full(n_pairs, np.nan)
    ci_high = np.full(n_pairs, np.nan)
    ci_method = np.full(n_pairs, "", dtype=object)
    boot_n = np.zeros(n_pairs, dtype=np.int64)
    work = np.ceil(bootstrap_cost(lat.n[0], rows_n[0])
                   + bootstrap_cost(lat.n[1], rows_n[1])).astype(np.int64)
    is_cand = (prelim == "slower?") | (prelim == "faster?")
    # many processes on both sides (pooled over sweeps): a normal CI from the process-level
    # spread of log row medians, cheap for all pairs at once. If the candidates' bootstrap
    # does not fit the budget even at min_resamples, candidates whose decision this CI settles
    # with a 2x margin skip the bootstrap; it also stands in where the budget runs out.
    n_lo, n_hi = _process_level_ci(rows, values, lengths, pair_r, side_r, n_pairs, ratio,
                                   rows_n, th)
    if int(work[is_cand].sum()) * th.min_resamples > th.bootstrap_budget:
        with np.errstate(invalid="ignore", divide="ignore"):
            half = np.log(n_hi / n_lo) / 2.0                 # z * s on the log scale
            settled = is_cand & np.isfinite(half) & (
                ((prelim == "slower?") & (np.log(ratio) - 2 * half > np.log1p(th.ci_margin)))
                | ((prelim == "faster?") & (np.log(ratio) + 2 * half < -np.log1p(th.ci_margin))))
    else:
        settled = np.zeros(n_pairs, dtype=bool)
    ci_low[settled], ci_high[settled] = n_lo[settled], n_hi[settled]
    ci_method[settled] = "normal"
    cand = np.flatnonzero(is_cand & ~settled)
    others = np.flatnonzero(~is_cand & (lat.n[0] > 0) & (lat.n[1] > 0))
    budget = int(th.bootstrap_budget)
    get = None
    for group, must in ((cand, True), (others, False)):
        if not len(group):
            continue
        total = int(work[group].sum())
        b = th.resamples if total * th.resamples <= budget else budget // max(total, 1)
        b = min(th.resamples, max(th.min_resamples, b) if must else b)
        if b < th.min_resamples and not must:
            continue
        get = get or _groups_by_pair_side(pair_r, side_r, values, lengths)
        for p in group:
            rng = np.random.default_rng([th.seed, int(p)])
            ci_low[p], ci_high[p] = bootstrap_ratio_ci_flat(get(p, 0), get(p, 1), resamples=b,
                                                            level=th.ci_level, rng=rng)
            boot_n[p] = b
            ci_method[p] = "bootstrap"
        budget = max(0, budget - total * b)
    fill = (ci_method == "") & np.isfinite(n_lo)
    ci_low[fill], ci_high[fill] = n_lo[fill], n_hi[fill]
    ci_method[fill] = "normal"
    latency = latency_final(prelim, ci_low, ci_high, th)
    with np.errstate(invalid="ignore"):
        for p in np.flatnonzero(latency == "unstable"):
            for sd, name in ((0, "base"), (1, "head")):
                if cv[sd, p] > th.max_cv:
                    notes[p].append(f"cv {name} {100 * cv[sd, p]:.1f}%")

    # ---- memory and correctness: one groupby over (pair, side) -------------------------------
    frame = pd.DataFrame({"_pair": pair_r, "_side": side_r})
    spec = {}
    # what the model needs in theory (static analysis: weights + activation lower bound)
    frame["theory"] = (_num(rows, "model_weight_bytes").to_numpy()
                       + _num(rows, "model_activation_lower_bound_bytes").to_numpy()) / 1024.0
    spec["theory_med"] = ("theory", "median")
    for ph in PHASES:
        frame[ph] = _num(rows, f"rss_{ph}_peak_kb").to_numpy()
        spec[f"{ph}_min"] = (ph, "min")
        spec[f"{ph}_max"] = (ph, "max")
        spec[f"{ph}_med"] = (ph, "median")
        spec[f"{ph}_n"] = (ph, "count")
    has_ref = (rows["has_reference"].astype(object).eq(True).to_numpy(dtype=bool)
               if "has_reference" in rows.columns else np.zeros(len(rows), dtype=bool))
    rel = _num(rows, "out_rel_err").to_numpy()
    cos = _num(rows, "out_cosine").to_numpy()
    frame["rel"] = np.where(has_ref, np.where(np.isnan(rel), np.inf, rel), np.nan)
    frame["cos"] = np.where(has_ref, np.where(np.isnan(cos), -np.inf, cos), np.nan)
    frame["ref"] = has_ref.astype(np.int64)
    # accuracy beside speed (a precision comparison): worst max abs error and top-1 agreement
    mabs = _num(rows, "out_max_abs_err").to_numpy()
    frame["mabs"] = np.where(has_ref, np.where(np.isnan(mabs), np.inf, mabs), np.nan)
    frame["top1"] = np.where(has_ref, _num(rows, "out_top1_agree").to_numpy(), np.nan)
    frame["naninf"] = (_num(rows, "out_nan").fillna(0) + _num(rows, "out_inf").fillna(0)).to_numpy()
    sha = _text(rows, "out_sha256")
    frame["sha"] = sha.to_numpy(dtype=object)
    frame["sha_n"] = sha.notna().to_numpy(dtype=np.int64)
    frame["fallback"] = (rows["status"].astype(object) == "fallback").to_numpy(dtype=np.int64)
    spec.update(rel=("rel", "max"), cos=("cos", "min"), ref=("ref", "sum"),
                mabs=("mabs", "max"), top1=("top1", "min"),
                naninf=("naninf", "max"), sha_n=("sha_n", "sum"),
                fallback=("fallback", "sum"))
    agg = _side_agg(frame, n_pairs, spec)
    # sha: min == max on both sides and equal -> identical (only over rows that have one)
    shas = frame[frame["sha_n"] > 0]
    sagg = _side_agg(shas, n_pairs, {"sha_min": ("sha", "min"), "sha_max": ("sha", "max")}) \
        if len(shas) else {"sha_min": np.full((2, n_pairs), None, dtype=object),
                           "sha_max": np.full((2, n_pairs), None, dtype=object)}
    smin, smax = sagg["sha_min"], sagg["sha_max"]
    identical = (pd.notna(smin[0]) & (smin[0] == smax[0]) & (smin[1] == smax[1])
                 & (smin[0] == smin[1]) & (agg["sha_n"][0] == rows_n[0])
                 & (agg["sha_n"][1] == rows_n[1])).astype(bool)

    out = keys.copy()
    out["rows_base"], out["rows_head"] = rows_n[0], rows_n[1]
    out["n_base"], out["n_head"] = lat.n[0], lat.n[1]
    for q in ("median", "p10", "p90"):
        arr = getattr(lat, q)
        out[f"{q}_base"], out[f"{q}_head"] = arr[0], arr[1]
    out["ratio"] = ratio
    out["ci_low"], out["ci_high"] = ci_low, ci_high
    out["resamples"] = boot_n
    out["ci_method"] = ci_method
    out["p_slower"], out["p_faster"] = lat.p_slower, lat.p_faster
    out["cv_base"], out["cv_head"] = cv[0], cv[1]
    out["latency"] = latency

    out["theory_kb"] = np.where(np.isfinite(agg["theory_med"][1]), agg["theory_med"][1],
                                agg["theory_med"][0])
    mem_verdicts = []
    for ph in PHASES:
        mb, mh = agg[f"{ph}_med"][0], agg[f"{ph}_med"][1]
        nb = np.nan_to_num(agg[f"{ph}_n"][0]).astype(np.int64)
        nh = np.nan_to_num(agg[f"{ph}_n"][1]).astype(np.int64)
        v = memory_verdict(nb, nh, agg[f"{ph}_min"][0], agg[f"{ph}_max"][0],
                           agg[f"{ph}_min"][1], agg[f"{ph}_max"][1], mb, mh, th)
        # a change measured beside other work is no evidence: allocators that level off by
        # timing moved under load alone (ncnn ConvTranspose, 1 thread: steady peak 417 MB on
        # a quiet machine, 564 MB beside one busy process, every process)
        moved = busy_pair & ((v == "larger") | (v == "smaller"))
        v = np.where(moved, "insufficient", v)
        for p in np.flatnonzero(moved):
            notes[p].append(f"rss {ph}: changed under cpu contention, not judged")
        out[f"rss_{ph}_base"], out[f"rss_{ph}_head"] = mb, mh
        out[f"rss_{ph}_delta_kb"] = mh - mb
        out[f"rss_{ph}"] = v
        mem_verdicts.append(v)
    # say why latency or memory has no verdict when processes are too few
    both = (rows_n[0] > 0) & (rows_n[1] > 0)
    for what, need in (("latency", th.min_processes), ("memory", th.rss_min_processes)):
        for p in np.flatnonzero(both & (np.minimum(rows_n[0], rows_n[1]) < need)):
            notes[p].append(f"{what}: {rows_n[0, p]}/{rows_n[1, p]} processes, "
                            f"needs {need} per side")
    worst = np.full(n_pairs, len(_MEMORY_ORDER) - 1, dtype=np.int64)
    for v in mem_verdicts:
        for i, name in enumerate(_MEMORY_ORDER):
            worst = np.where(v == name, np.minimum(worst, i), worst)
    out["memory"] = np.array(_MEMORY_ORDER, dtype=object)[worst]

    precision = (keys["precision"].to_numpy(dtype=object) if "precision" in keys.columns
                 else np.full(n_pairs, pr.head, dtype=object))
    ref = np.nan_to_num(agg["ref"]).astype(np.int64)
    corr, cnotes = correctness_verdict(
        precision, identical, np.nan_to_num(agg["naninf"][0]), np.nan_to_num(agg["naninf"][1]),
        ref[0], ref[1], agg["rel"][0], agg["rel"][1], agg["cos"][0], agg["cos"][1], th,
        drift=pr.column != "precision", mabs_base=agg["mabs"][0], mabs_head=agg["mabs"][1])
    for sd, name in ((0, "base"), (1, "head")):
        # inf stays inf (an output that is all wrong, or NaN against the reference): the
        # report labels it; NaN means no reference to compare with
        out[f"rel_err_{name}"] = agg["rel"][sd]
        out[f"cosine_{name}"] = np.where(np.isinf(agg["cos"][sd]), np.nan, agg["cos"][sd])
        out[f"nan_inf_{name}"] = np.nan_to_num(agg["naninf"][sd]).astype(np.int64)
        out[f"max_abs_err_{name}"] = agg["mabs"][sd]
        out[f"top1_{name}"] = agg["top1"][sd]
    out["correctness"] = corr
    out["correctness_note"] = cnotes

    # ---- notes: fallbacks, version changes (run/tag comparisons) ------------------------------
    fb = np.nan_to_num(agg["fallback"]).astype(np.int64)
    for sd, name in ((0, "base"), (1, "head")):
        for p in np.flatnonzero(fb[sd]):
            notes[p].append(f"fallback ({name}×{fb[sd, p]})")
    if "engine_version" not in pr.key and pr.column != "engine_version" \
            and "engine_version" in rows.columns:
        ev = _side_agg(pd.DataFrame({"_pair": pair_r, "_side": side_r,
                                     "v": rows["engine_version"].astype(object).to_numpy()}),
                       n_pairs, {"lo": ("v", "min"), "hi": ("v", "max")})
        changed = (ev["lo"][0] != ev["lo"][1]) | (ev["hi"][0] != ev["hi"][1])
        for p in np.flatnonzero(changed):
            notes[p].append(f"engine_version {ev['lo'][0, p]}→{ev['lo'][1, p]}")
    out["latency_note"] = ["; ".join(n) for n in notes]

    # distinct rows (a precision comparison pairs one base row with each head quantization)
    info = {"rows_base": int(pr.rows.loc[pr.rows["_side"] == 0, "_pos"].nunique()),
            "rows_head": int(pr.rows.loc[pr.rows["_side"] == 1, "_pos"].nunique()),
            "pairs": n_pairs, "missing": int(len(pr.missing)), "engine": engine,
            "bootstrapped": int((boot_n > 0).sum())}
    return CompareResult(dimension=pr.column, base=pr.base, head=pr.head, key=pr.key,
                         thresholds=th, pairs=out, missing=pr.missing, info=info)
