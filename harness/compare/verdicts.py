"""Verdict rules for latency, peak memory and correctness, all thresholds in `Thresholds`.

The functions here take per-pair arrays (one element per matched pair) and return arrays of
verdict strings; core.py computes the inputs.

Latency (first rule that applies wins):
  insufficient  fewer than `min_samples` measured samples, or fewer than `min_processes`
                processes (rows), on either side;
  unstable      either side's CV > `max_cv` (robust CV by default, see stats.GroupedLatency.cv),
                or a row recorded a governor change, a temperature rise > `temp_rise_c`,
                throttling, or CPU contention > `max_contention` during its measurement,
                or (more than one thread) the two sides' median core-to-core latency
                differs by more than a factor `max_core_latency_change`;
  slower        one-sided Mann–Whitney p < alpha AND ratio of medians >= min_ratio AND the
                bootstrap CI's lower bound > 1 + ci_margin;
  faster        the mirror image (p < alpha the other way, ratio <= 1/min_ratio, CI upper
                bound < 1/(1 + ci_margin));
  same          otherwise.
Peak RSS, per phase (load, first, steady), one value per process (row):
  insufficient  fewer than `rss_min_processes` values on either side;
  larger        min(head) > max(base) AND the median delta > the margin, where
                margin = max(rss_abs_kb, rss_rel x median(base), the larger within-side range
                (max - min of base, of head)): a difference must exceed what identical
                processes already differ by;
  smaller       the mirror image; same otherwise;
  insufficient  also where larger/smaller would be said but a row of the pair recorded CPU
                contention > `max_contention` (peak RSS moved with machine load alone).
Correctness (tolerances from harness.verdict by the head's precision):
  identical     the same single out_sha256 on both sides, the head's outputs not wrong;
  wrong         NaN/Inf in the head output (new or not), or the head's worst metric outside the
                tolerance or its outputs not matching the reference (count, shape, dtype class:
                no metrics), identical to the base or not;
  drift         inside the tolerance but clearly worse than base (and the head's max abs error
                above the tolerance's absolute floor): 1 - cosine grew by more than
                drift_factor x and by more than drift_cos_abs, or rel_err grew by more than
                drift_factor x and by more than drift_rel_abs;
  no-ref        no reference output to judge against (and no NaN/Inf);
  ok            otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from harness_agent.engines.base import QUANTIZED

from ..config.toml import Table
from ..errors import InputError
from ..verdict import TOLERANCES, Tolerance, tolerance_for, within

LATENCY_VERDICTS = ("slower", "unstable", "insufficient", "faster", "same")
MEMORY_VERDICTS = ("larger", "insufficient", "smaller", "same")
CORRECTNESS_VERDICTS = ("wrong", "drift", "no-ref", "ok", "identical")
GATE_VERDICTS = ("slower", "larger", "wrong", "drift", "unstable", "insufficient", "missing")
PHASES = ("load", "first", "steady")
CV_KINDS = ("robust", "classic")
THRESHOLDS_WHERE = "compare thresholds"  # the source named in messages about a bad threshold
_FIELD_KINDS = {"float": float, "int": int, "str": str}


# What each numeric threshold may be (inf is allowed where it switches a rule off).
_RANGES = {
    "alpha": (lambda v: 0 < v < 1, "a significance level, 0 < alpha < 1"),
    "min_ratio": (lambda v: v >= 1, "a ratio >= 1"),
    "ci_margin": (lambda v: v >= 0, "a margin >= 0"),
    "ci_level": (lambda v: 0 < v < 1, "0 < level < 1"),
    "resamples": (lambda v: v >= 1, "a count >= 1"),
    "bootstrap_budget": (lambda v: v >= 1, "a count >= 1"),
    "min_resamples": (lambda v: v >= 1, "a count >= 1"),
    "max_cv": (lambda v: v >= 0, "a coefficient of variation >= 0"),
    "min_samples": (lambda v: v >= 1, "a sample count >= 1"),
    "min_processes": (lambda v: v >= 1, "a process count >= 1"),
    "temp_rise_c": (lambda v: v >= 0, "a rise in °C >= 0"),
    "max_contention": (lambda v: v >= 0, "a share >= 0"),
    "max_core_latency_change": (lambda v: v >= 1, "a ratio >= 1"),
    "rss_abs_kb": (lambda v: v >= 0, "a size in kB >= 0"),
    "rss_rel": (lambda v: v >= 0, "a relative change >= 0"),
    "rss_min_processes": (lambda v: v >= 1, "a process count >= 1"),
    "int8_cosine": (lambda v: -1 <= v <= 1, "a cosine, -1 to 1"),
    "drift_factor": (lambda v: v >= 1, "a factor >= 1"),
    "drift_cos_abs": (lambda v: v >= 0, "a difference >= 0"),
    "drift_rel_abs": (lambda v: v >= 0, "a difference >= 0"),
}


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.01          # one-sided Mann–Whitney significance level
    min_ratio: float = 1.05      # |effect| on the ratio of medians
    ci_margin: float = 0.02      # CI bound must clear 1 + margin (or 1/(1 + margin))
    ci_level: float = 0.95
    resamples: int = 2000        # hierarchical bootstrap resamples
    seed: int = 0
    # bootstrap work cap, in drawn samples (resamples x samples of both sides, summed over
    # pairs); pairs that can reach slower/faster get the budget first (see core.py)
    bootstrap_budget: int = 40_000_000
    min_resamples: int = 200
    max_cv: float = 0.10
    cv_kind: str = "robust"      # "robust" (p10-p90 spread) or "classic" (sd/mean)
    min_samples: int = 30
    # Processes of one configuration differ (placement, frequency, cache and allocator state,
    # other load), and the hierarchical bootstrap can only see that spread with several
    # processes a side: with one, the CI reflects the within-process noise alone. Measured
    # A/A (the smoke suite run back to back, 2 shared x86 cores): 1 process x 30 samples a side
    # called 14 % of identical pairs slower or faster (8 of 56); 3 processes, none of 126.
    min_processes: int = 3
    temp_rise_c: float = 10.0    # within one row (temp_max_c_end - temp_max_c_start)
    # Background load during a row's timed loop (harness_agent.cpuload): the part of its
    # threads' CPU demand that other work on its CPUs took. Every process of one run can share
    # its cores with the same background load, so the hierarchical CI cannot see it: measured
    # A/A on 2 shared x86 cores (CI), 2 threads: ppocr_det on ncnn 7.8 % slower in the second
    # run (CI lower bound 1.050), MNN 51 %. Above this share a latency difference is not the
    # engine's: 5 %, the size of the smallest change the latency rule reports (min_ratio).
    max_contention: float = 0.05
    # The machine's core-to-core latency (harness_agent.corelatency), the median of each
    # side's rows: a hypervisor moving vCPUs between cores that share a cache and cores that
    # do not changes it without a trace in /proc/stat, and threads that exchange data slow
    # down with it. Measured on 2-vCPU CI machines: 180-190 ns and 440-490 ns, switching
    # after seconds to minutes; MNN on PP-OCRv4 det at 2 threads 34 ms and 49 ms, 1 thread
    # unchanged.
    # Within one state the figure varied by 10 %. Above this ratio between the two sides a
    # multi-thread latency difference is not the engine's.
    max_core_latency_change: float = 1.3
    rss_abs_kb: float = 1024.0   # 1 MiB
    rss_rel: float = 0.02
    # Peak RSS is one value per process, so the memory rule needs several processes per side:
    # with one each it compares one value with one value, and any process-to-process spread
    # (allocator state, thread start-up) reads as a change. For exchangeable values,
    # min(head) > max(base) happens by chance with probability 1 / C(2n, n): 1/2 at n = 1,
    # 1/6 at n = 2, 1/20 at n = 3; requiring the median delta to exceed the within-side
    # range as well brings n = 3 to about 1/45 (Gaussian noise), and the absolute/relative
    # floors make noise below 1 MiB / 2 % never count.
    rss_min_processes: int = 3
    # the cosine an int8 / int8-weight head must reach (the row verdict's, harness_agent.
    # tolerance): a user who accepts more quantization loss says so here
    int8_cosine: float = TOLERANCES["int8"].cosine
    drift_factor: float = 10.0
    drift_cos_abs: float = 1e-6
    drift_rel_abs: float = 1e-6

    def __post_init__(self):
        t = Table(THRESHOLDS_WHERE, asdict(self))
        for f in fields(self):  # the types the fields declare (from the CLI or from Python)
            t.get(f.name, _FIELD_KINDS[f.type])
        if self.cv_kind not in CV_KINDS:
            t.fail("cv_kind", " or ".join(CV_KINDS), repr(self.cv_kind))
        for name, (ok, expected) in _RANGES.items():
            value = getattr(self, name)
            if math.isnan(value) or not ok(value):  # NaN compares false: no rule at all
                t.fail(name, expected, repr(value))

    def with_options(self, **opts) -> "Thresholds":
        """A copy with the given fields replaced (None values ignored); InputError names an
        unknown field or a value of the wrong type."""
        names = {f.name for f in fields(self)}
        bad = sorted(set(opts) - names)
        if bad:
            raise InputError(f"option {bad[0]!r}", "is not a compare threshold",
                             ", ".join(sorted(names)))
        t = Table(THRESHOLDS_WHERE, {k: v for k, v in opts.items() if v is not None})
        return replace(self, **{f.name: t.get(f.name, _FIELD_KINDS[f.type])
                                for f in fields(self) if f.name in t})

    def as_dict(self) -> dict:
        return asdict(self)


def latency_prelim(n_base, n_head, cv_base, cv_head, env_unstable, p_slower, p_faster, ratio,
                   th: Thresholds, rows_base=None, rows_head=None):
    """Verdicts without the CI: 'insufficient', 'unstable', 'same', or the candidates
    'slower?'/'faster?' that still need the bootstrap CI. n_* are samples, rows_* processes
    per side (None: not checked)."""
    out = np.full(len(ratio), "same", dtype=object)
    cand_slow = (p_slower < th.alpha) & (ratio >= th.min_ratio)
    cand_fast = (p_faster < th.alpha) & (ratio <= 1.0 / th.min_ratio)
    out[cand_slow] = "slower?"
    out[cand_fast] = "faster?"
    with np.errstate(invalid="ignore"):
        noisy = (cv_base > th.max_cv) | (cv_head > th.max_cv)
    out[noisy | env_unstable] = "unstable"
    out[(n_base < th.min_samples) | (n_head < th.min_samples)] = "insufficient"
    if rows_base is not None and rows_head is not None:
        few = (np.asarray(rows_base) < th.min_processes) | (np.asarray(rows_head)
                                                            < th.min_processes)
        out[few] = "insufficient"
    return out


def latency_final(prelim, ci_low, ci_high, th: Thresholds):
    out = prelim.copy()
    with np.errstate(invalid="ignore"):
        slow = (prelim == "slower?") & (ci_low > 1.0 + th.ci_margin)
        fast = (prelim == "faster?") & (ci_high < 1.0 / (1.0 + th.ci_margin))
    out[(prelim == "slower?") | (prelim == "faster?")] = "same"
    out[slow] = "slower"
    out[fast] = "faster"
    return out


def memory_margin_kb(min_base, max_base, min_head, max_head, med_base, th: Thresholds):
    """The change (kB, per pair) a median delta must exceed: the absolute floor, the relative
    floor on the base median, or the larger within-side range, whichever is largest."""
    with np.errstate(invalid="ignore"):
        spread = np.fmax(max_base - min_base, max_head - min_head)
        return np.fmax(np.maximum(th.rss_abs_kb, th.rss_rel * np.abs(med_base)), spread)


def memory_verdict(n_base, n_head, min_base, max_base, min_head, max_head, med_base, med_head,
                   th: Thresholds):
    """Arrays per pair for one phase: n_* (processes with a value), min_/max_/med_* (kB).
    Returns the verdicts (see the module docstring)."""
    out = np.full(len(n_base), "same", dtype=object)
    delta = med_head - med_base
    margin = memory_margin_kb(min_base, max_base, min_head, max_head, med_base, th)
    with np.errstate(invalid="ignore"):
        larger = (min_head > max_base) & (delta > margin)
        smaller = (max_head < min_base) & (-delta > margin)
    out[larger] = "larger"
    out[smaller] = "smaller"
    need = th.rss_min_processes
    out[(np.asarray(n_base) < need) | (np.asarray(n_head) < need)] = "insufficient"
    return out


def _tolerance(precision, th: Thresholds):
    """The row tolerance of ``precision``, with th.int8_cosine for the quantized ones."""
    tol = tolerance_for(precision)
    if precision in QUANTIZED and th.int8_cosine != tol.cosine:
        return Tolerance(tol.rel_err, th.int8_cosine, tol.abs_err)
    return tol


def correctness_verdict(precision, identical, nan_inf_base, nan_inf_head, ref_base, ref_head,
                        rel_base, rel_head, cos_base, cos_head, th: Thresholds,
                        drift: bool = True, mabs_base=None, mabs_head=None):
    """Arrays per pair: precision (head's), identical (bool), nan_inf_* (max NaN+Inf count),
    ref_* (rows with a reference), rel_* (worst rel_err), cos_* (worst cosine), mabs_* (worst
    max abs error: the tolerance's absolute floor; None: not known). ``drift``
    False: no `drift` verdict (a precision comparison, where the head loses accuracy on
    purpose and its own tolerance is the judge). Returns (verdicts, notes)."""
    n = len(identical)
    out = np.full(n, "ok", dtype=object)
    notes = np.full(n, "", dtype=object)
    tols = [_tolerance(p if isinstance(p, str) else None, th) for p in precision]

    def outside(rel, cos, mabs):
        mabs = np.full(n, np.nan) if mabs is None else mabs
        return np.array([not within({"rel_err": r, "cosine": c, "max_abs_err": m}, t)[0]
                         for r, c, m, t in zip(rel, cos, mabs, tols)], dtype=bool)

    has_ref = ref_head > 0
    out_of_tol = has_ref & outside(rel_head, cos_head, mabs_head)
    base_out = (ref_base > 0) & outside(rel_base, cos_base, mabs_base)
    # errors at float-rounding level on the head (within the absolute floor) are no drift
    floor = np.array([t.abs_err if t.abs_err is not None else -np.inf for t in tols])
    with np.errstate(invalid="ignore"):
        at_floor = (np.zeros(n, dtype=bool) if mabs_head is None
                    else np.asarray(mabs_head, dtype=float) <= floor)
        err_b, err_h = 1.0 - cos_base, 1.0 - cos_head
        both_ref = has_ref & (ref_base > 0) & drift & ~at_floor
        drift_cos = both_ref & (err_h > th.drift_factor * np.maximum(err_b, 0.0)) & (
            err_h - err_b > th.drift_cos_abs)
        drift_rel = both_ref & (rel_head > th.drift_factor * rel_base) & (
            rel_head - rel_base > th.drift_rel_abs)
    out[~has_ref] = "no-ref"
    out[drift_cos | drift_rel] = "drift"
    notes[drift_cos] = "1-cos grew"
    notes[drift_rel & ~drift_cos] = "rel_err grew"
    notes[drift_rel & drift_cos] = "1-cos and rel_err grew"
    out[out_of_tol] = "wrong"
    notes[out_of_tol] = "outside tolerance"
    notes[out_of_tol & base_out] = "outside tolerance (also in base)"
    nan_head = nan_inf_head > 0
    new_nan = nan_head & ~(nan_inf_base > 0)
    out[nan_head] = "wrong"
    notes[nan_head & ~new_nan] = "NaN/Inf (also in base)"
    notes[new_nan] = "new NaN/Inf"
    # identical outputs are no change, but outputs that are wrong stay wrong: a gate on
    # `wrong` must trip on them even when the base was just as wrong
    same = identical & ~out_of_tol & ~nan_head
    out[same] = "identical"
    notes[same] = ""
    return out, notes
