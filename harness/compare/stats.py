"""Statistics for comparing latency samples: Mann–Whitney U, quantiles, spread, bootstrap.

Everything that runs once per pair is vectorized over all pairs at once (one global sort of the
samples); only the bootstrap runs per pair, and only for pairs that need it (see core.py).
No scipy: the Mann–Whitney normal approximation with tie and continuity correction is
implemented here (tests/test_stats_parity.py checks it against scipy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z_P10 = 1.2815515655446004  # standard normal 90 % quantile: (p90 - p10) / (2 Z_P10) = sigma
_erfc = np.frompyfunc(math.erfc, 1, 1)


def norm_sf(z) -> np.ndarray:
    """P(Z > z) for a standard normal Z, elementwise (exact via math.erfc)."""
    z = np.asarray(z, dtype=float)
    out = np.full(z.shape, np.nan)
    ok = np.isfinite(z)
    out[ok] = _erfc(z[ok] / math.sqrt(2.0)).astype(float) * 0.5
    out[z == np.inf] = 0.0
    out[z == -np.inf] = 1.0
    return out


# ---------------------------------------------------------------------------------------------
# Mann–Whitney U
# ---------------------------------------------------------------------------------------------

def mwu_normal_p(u_head, n_base, n_head, tie_term):
    """One-sided p-values from U of the head sample (vectorized), normal approximation with
    tie correction and continuity correction.

    u_head = R_head - n_head (n_head + 1) / 2 (R_head: sum of the head ranks in the pooled
    sample); tie_term = sum over tie groups of t^3 - t. Returns (p_greater, p_less):
    p_greater small means head values tend to be larger (slower)."""
    u = np.asarray(u_head, dtype=float)
    n1 = np.asarray(n_base, dtype=float)
    n2 = np.asarray(n_head, dtype=float)
    n = n1 + n2
    mean = n1 * n2 / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        var = n1 * n2 / 12.0 * ((n + 1.0) - np.asarray(tie_term, float) / (n * (n - 1.0)))
        sd = np.sqrt(var)
        z_greater = (u - mean - 0.5) / sd
        z_less = (mean - u - 0.5) / sd
    p_greater = norm_sf(z_greater)
    p_less = norm_sf(z_less)
    degenerate = ~(sd > 0)  # all values tied, or an empty side
    p_greater[degenerate] = 1.0
    p_less[degenerate] = 1.0
    return np.minimum(p_greater, 1.0), np.minimum(p_less, 1.0)


# ---------------------------------------------------------------------------------------------
# All pairs at once
# ---------------------------------------------------------------------------------------------

@dataclass
class GroupedLatency:
    """Per-pair latency statistics (arrays of length n_pairs; row 0 = base, row 1 = head)."""
    n: np.ndarray            # (2, P) sample counts
    p10: np.ndarray          # (2, P)
    median: np.ndarray       # (2, P)
    p90: np.ndarray          # (2, P)
    mean: np.ndarray         # (2, P)
    std: np.ndarray          # (2, P) sample standard deviation
    u_head: np.ndarray       # (P,)
    tie_term: np.ndarray     # (P,)
    p_slower: np.ndarray     # (P,) one-sided MWU: head larger
    p_faster: np.ndarray     # (P,) one-sided MWU: head smaller

    def cv(self, kind: str = "robust") -> np.ndarray:
        """(2, P) coefficient of variation of the pooled samples of each side.

        robust: (p90 - p10) / (2 * 1.2816 * median), equal to sd/mean for a normal sample but
        blind to up to 10 % outliers on each side (warm-up spikes, one stray preemption) while
        still catching a second mode that holds more than 10 % of the samples.
        classic: sd / mean."""
        with np.errstate(invalid="ignore", divide="ignore"):
            if kind == "classic":
                return self.std / self.mean
            return (self.p90 - self.p10) / (2 * Z_P10 * self.median)


def grouped_latency(values: np.ndarray, pair: np.ndarray, side: np.ndarray,
                    n_pairs: int, moments: bool = True) -> GroupedLatency:
    """Statistics of every pair from one flat sample array.

    values: latency samples (finite, >= 0); pair: pair index 0..n_pairs-1 of each sample;
    side: 0 (base) or 1 (head). One sort of a packed int64 key (pair | value bits | side)
    orders the samples by pair then value; rank sums (ties averaged), tie counts and per-side
    quantiles then need only linear passes and gathers. The value is packed as the top bits of
    its IEEE-754 pattern, rounded (monotone for non-negative floats); with fewer than 2^16 pairs
    that keeps 35 mantissa bits (relative resolution 3e-11), far below any timer's resolution."""
    values = np.asarray(values, dtype=np.float64)
    pair = np.asarray(pair, dtype=np.int64)
    side = np.asarray(side, dtype=np.int64)
    pair_bits = max(1, int(max(n_pairs - 1, 1)).bit_length())
    value_bits = 62 - pair_bits
    shift = 63 - value_bits
    vshift = value_bits + 1
    # key = pair << vshift | rounded value bits << 1 | side   (all in place: few temporaries)
    key = values.view(np.int64) + (1 << (shift - 1))
    key >>= shift
    key <<= 1
    key |= side
    key |= pair << vshift
    key.sort()

    def decode(k):
        return (((k >> 1) & ((1 << value_bits) - 1)) << shift).view(np.float64)

    counts = np.bincount(pair, minlength=n_pairs)
    pair_start = np.cumsum(counts) - counts
    total = len(key)
    is_head = (key & 1).astype(bool)
    hpos = np.flatnonzero(is_head)
    bpos = np.flatnonzero(~is_head)
    del is_head
    hp = key[hpos] >> vshift
    n_head = np.bincount(hp, minlength=n_pairs)
    n_base = counts - n_head
    # rank of position i (1-based within its pair) is i - pair_start + 1 without ties
    r_head = (np.bincount(hp, weights=hpos, minlength=n_pairs)
              - n_head * (pair_start - 1.0))
    tie_term = np.zeros(n_pairs)
    if total > 1:
        vkey = key >> 1
        tied = np.flatnonzero(vkey[1:] == vkey[:-1])  # i tied with i + 1
        if len(tied):
            # runs of equal values: starts/ends over the tied positions only
            brk = np.flatnonzero(np.diff(tied) != 1) + 1
            r_start = tied[np.concatenate([[0], brk])]
            r_end = tied[np.concatenate([brk - 1, [len(tied) - 1]])] + 2  # exclusive
            r_len = r_end - r_start
            r_pair = key[r_start] >> vshift
            tie_term = np.bincount(r_pair, weights=r_len.astype(float) ** 3 - r_len,
                                   minlength=n_pairs)
            # head elements inside runs: replace rank i by the run's average rank
            idx = ranges(r_start, r_end)
            run_of = np.repeat(np.arange(len(r_start)), r_len)
            h = (key[idx] & 1).astype(bool)
            avg = (r_start + r_end - 1) / 2.0
            adj = avg[run_of[h]] - idx[h]
            r_head += np.bincount(r_pair[run_of[h]], weights=adj, minlength=n_pairs)
        del vkey
    u_head = r_head - n_head * (n_head + 1) / 2.0
    p_slower, p_faster = mwu_normal_p(u_head, n_base, n_head, tie_term)

    n = np.vstack([n_base, n_head]).astype(np.int64)
    q = {k: np.full((2, n_pairs), np.nan) for k in ("p10", "median", "p90", "mean", "std")}
    for sd, pos in ((0, bpos), (1, hpos)):
        c = n[sd]
        st = np.cumsum(c) - c
        ok = c > 0
        for name, qq in (("p10", 0.10), ("median", 0.50), ("p90", 0.90)):
            at = qq * (c[ok] - 1)
            lo = np.floor(at).astype(np.int64)
            hi = np.minimum(lo + 1, c[ok] - 1)
            frac = at - lo
            vlo = decode(key[pos[st[ok] + lo]])
            vhi = decode(key[pos[st[ok] + hi]])
            q[name][sd, ok] = vlo * (1 - frac) + vhi * frac
    if not moments:
        return GroupedLatency(n=n, u_head=u_head, tie_term=tie_term, p_slower=p_slower,
                              p_faster=p_faster, **q)
    # moments from the unsorted input (one bincount per side and moment)
    grp = pair * 2 + side
    c2 = np.bincount(grp, minlength=2 * n_pairs).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(grp, weights=values, minlength=2 * n_pairs) / c2
        dev = values - mean[grp]
        var = np.bincount(grp, weights=dev * dev, minlength=2 * n_pairs) / (c2 - 1)
    q["mean"] = mean.reshape(n_pairs, 2).T.copy()
    q["std"] = np.sqrt(var).reshape(n_pairs, 2).T.copy()
    return GroupedLatency(n=n, u_head=u_head, tie_term=tie_term, p_slower=p_slower,
                          p_faster=p_faster, **q)


def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, e) for all (s, e), vectorized."""
    lens = ends - starts
    off = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return np.arange(lens.sum()) + off


# ---------------------------------------------------------------------------------------------
# Hierarchical bootstrap
# ---------------------------------------------------------------------------------------------

MAX_TWO_LEVEL = 50   # more processes than this per side: process-level (cluster) bootstrap
GRID_POINTS = 128


def bootstrap_cost(n_samples, n_groups):
    """Work of one resample of one side, in "drawn samples" (the unit of bootstrap_budget):
    the two-level draw touches every sample (random number, gather, selection); the cluster
    mode is a (processes x grid) matrix product and one draw per process, measured at about
    1/64 of a drawn sample per multiply-add."""
    n_samples = np.asarray(n_samples, dtype=float)
    n_groups = np.asarray(n_groups, dtype=float)
    return np.where(n_groups > MAX_TWO_LEVEL, n_groups * GRID_POINTS / 64.0, n_samples)


def bootstrap_medians_flat(flat: np.ndarray, lens: np.ndarray, resamples: int,
                           rng: np.random.Generator, max_block: int = 2_000_000,
                           max_two_level: int = MAX_TWO_LEVEL,
                           grid_points: int = GRID_POINTS) -> np.ndarray:
    """Medians of `resamples` hierarchical bootstrap resamples; process i's samples are
    flat[sum(lens[:i]) : sum(lens[:i+1])].

    Up to `max_two_level` processes: each resample draws len(lens) processes with
    replacement, then, for each drawn process, as many samples as it has, with replacement,
    from that process; the median of everything drawn is one replicate (vectorized in blocks
    of at most `max_block` drawn values).

    More processes than that (pooled comparisons over many sweeps): only the processes are
    resampled (the cluster bootstrap; with that many processes the process level carries the
    variance, and the second stage would count within-process noise twice), and each
    replicate's median comes from the mixture CDF evaluated on a grid of `grid_points` pooled
    quantiles (between the pooled 25th and 75th percentiles, widened to the full range if a
    replicate falls outside) with linear interpolation: one matrix product per resample set."""
    flat = np.asarray(flat, dtype=float)
    lens = np.asarray(lens, dtype=np.int64)
    keep = lens > 0
    if not keep.all():
        lens = lens[keep]
    k = len(lens)
    if k == 0 or resamples <= 0:
        return np.full(max(resamples, 0), np.nan)
    if k > max_two_level:
        return _cluster_grid_medians(flat, lens, resamples, rng, grid_points)
    offs = np.cumsum(lens) - lens
    width = int(lens.max())
    equal = bool((lens == width).all())
    per = k * width
    block = max(1, max_block // per)
    out = np.empty(resamples)
    for b0 in range(0, resamples, block):
        b = min(block, resamples - b0)
        pick = rng.integers(0, k, size=(b, k)) if k > 1 else np.zeros((b, 1), dtype=np.int64)
        plen = lens[pick]                                               # (b, k)
        pos = (rng.random((b, k, width)) * plen[..., None]).astype(np.int64)
        drawn = flat[offs[pick][..., None] + pos].reshape(b, per)
        if equal:
            out[b0:b0 + b] = np.median(drawn, axis=1)
        else:  # slots beyond a process's own length are padding: push them to the end
            pad = np.arange(width)[None, None, :] >= plen[..., None]
            drawn[pad.reshape(b, per)] = np.inf
            drawn.sort(axis=1)
            c = plen.sum(axis=1)
            rows = np.arange(b)
            out[b0:b0 + b] = 0.5 * (drawn[rows, (c - 1) // 2] + drawn[rows, c // 2])
    return out


def _cluster_grid_medians(flat, lens, resamples, rng, grid_points):
    k = len(lens)
    group = np.repeat(np.arange(k), lens)
    pick = rng.integers(0, k, size=(resamples, k))                  # processes drawn
    weights = np.bincount((np.arange(resamples)[:, None] * k + pick).ravel(),
                          minlength=resamples * k).reshape(resamples, k).astype(float)
    target = (weights @ lens.astype(float)) / 2.0
    out = np.full(resamples, np.nan)
    for band in ((0.25, 0.75), (0.0, 1.0)):
        grid = np.unique(np.quantile(flat, np.linspace(band[0], band[1], grid_points)))
        g = len(grid)
        # counts[p, j] = samples of process p <= grid[j]
        bins = np.searchsorted(grid, flat, side="left")        # value <= grid[j] <=> bin <= j
        inb = bins < g
        counts = np.bincount(group[inb] * g + bins[inb], minlength=k * g).reshape(k, g)
        cum = weights @ np.cumsum(counts, axis=1).astype(float)  # (B, G)
        above = cum >= target[:, None]
        j = above.argmax(axis=1)
        inside = above.any(axis=1) & (j > 0)
        if band[0] > 0 and not inside.all():
            continue  # some replicate's median is outside the band: use the full range
        rows = np.flatnonzero(inside)
        jj = j[rows]
        c0, c1 = cum[rows, jj - 1], cum[rows, jj]
        g0, g1 = grid[jj - 1], grid[jj]
        out[rows] = g0 + (target[rows] - c0) / (c1 - c0) * (g1 - g0)
        out[~inside & above[:, 0]] = grid[0]
        out[~above.any(axis=1)] = grid[-1]
        break
    return out


def bootstrap_ratio_ci_flat(base: tuple[np.ndarray, np.ndarray],
                            head: tuple[np.ndarray, np.ndarray], resamples: int = 2000,
                            level: float = 0.95, rng: np.random.Generator | None = None):
    """Percentile CI (lo, hi) of median(head) / median(base) from independent hierarchical
    bootstraps of both sides (bootstrap_medians_flat); each side is (flat samples, samples per
    process). (nan, nan) when no replicate gives a finite ratio."""
    rng = rng if rng is not None else np.random.default_rng(0)
    mb = bootstrap_medians_flat(*base, resamples, rng)
    mh = bootstrap_medians_flat(*head, resamples, rng)
    return _percentile_ci(mb, mh, level)


def _percentile_ci(mb: np.ndarray, mh: np.ndarray, level: float) -> tuple[float, float]:
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = mh / mb
    ratio = ratio[np.isfinite(ratio)]
    if len(ratio) == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(ratio, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
