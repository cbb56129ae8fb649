"""Benchmark: results.load() and compare.compare() on a synthetic 1,000,000-row dataset.

    python benchmarks/compare_bench.py [--runs 80] [--samples 20] [--keep DIR]

The dataset looks like 80 nightly sweeps of 12,800 rows each (1,024,000 rows): 4 hosts x
10 models x 2 engines x 2 versions x 2 backends x 2 precisions x 4 thread counts x 5 processes,
20 latency samples per row, every column of the real schema filled (strings, timestamps,
per-phase RSS, output metrics, environment), written like RunWriter: one zstd Parquet file per
(date, engine, run) under date=YYYY-MM-DD/engine=NAME/ (160 files). mnn 3.6.1 is 10 % slower
than 3.4.0 on one model; ncnn's model m3 gets 15 % slower from sweep 40 on (a change point).

Printed: bytes on disk per row, load() time (all columns; and the columns compare needs, with
the engine filter pushed down), compare() time for mnn 3.4.0 vs 3.6.1 over all 80 sweeps
(512,000 rows, 10.24 M samples, 640 pairs), compare() for two sweeps (run_id), history() time,
and compare() of cpu vs vulkan over every row (1,024,000 rows, 20.5 M samples).

How compare() stays fast (see harness/compare/core.py): pairing is integer factorization;
all pairs' Mann–Whitney U, medians and p10/p90 come from ONE sort of all samples (a packed
int64 key: pair | value bits | side); memory/correctness are one groupby; the bootstrap runs
only for pairs whose rank test and ratio already pass (the only ones whose verdict depends on
the CI), under a work budget that scales the resamples down (>= 200) when there are many;
sides with > 50 processes (pooled over sweeps) use the process-level bootstrap on a CDF grid.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.store.partitions import partition_path, write_parquet  # noqa: E402
from harness.store.schema import SCHEMA, SCHEMA_VERSION  # noqa: E402

HOSTS = ["pi5", "rk3588", "sd8gen2", "x86-ci"]
MODELS = [f"m{i}" for i in range(10)]
ENGINES = {"mnn": ["3.4.0", "3.6.1"], "ncnn": ["1.0.20240410", "1.0.20250503"]}
BACKENDS = ["cpu", "vulkan"]
PRECISIONS = ["fp32", "fp16"]
THREADS = [1, 2, 4, 8]
PROCESSES = 5
DAY = 86400.0
T0 = 1_780_000_000.0


def _strings(codes: np.ndarray, values: list[str]) -> pa.Array:
    """A string column from small-int codes, built in C++ (no Python object per row)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)),
                                          pa.array(values, pa.string())).cast(pa.string())


def _hash(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def build_run(run: int, engine: str, samples: int, rng: np.random.Generator) -> pa.Table:
    """All rows of one engine in one sweep (6,400 rows), as a table with the exact schema."""
    versions = ENGINES[engine]
    grid = np.indices((len(HOSTS), len(MODELS), len(versions), len(BACKENDS), len(PRECISIONS),
                       len(THREADS), PROCESSES)).reshape(7, -1)
    h, m, v, b, p, t, proc = grid
    n = h.size
    threads = np.array(THREADS)[t]
    # latency model: model cost, threads scaling, backend/precision, host speed, version effect
    base = (5.0 + 4.0 * m) * (1.0 + 0.3 * h) / threads ** 0.7
    base *= np.where(b == 1, 0.6, 1.0) * np.where(p == 1, 0.8, 1.0)
    if engine == "mnn":
        base *= np.where((v == 1) & (m == 2), 1.10, 1.0)          # the regression
    else:
        base *= np.where((m == 3) & (run >= 40), 1.15, 1.0)        # a change point in history
    proc_off = np.exp(rng.normal(0.0, 0.01, n))
    lat = base[:, None] * proc_off[:, None] * np.exp(rng.normal(0.0, 0.03, (n, samples)))
    lat_sorted = np.sort(lat, axis=1)
    mean = lat.mean(axis=1)
    status_codes = np.where(rng.random(n) < 0.002, 1, 0)            # a few errors
    ok = status_codes == 0
    offsets = np.zeros(n + 1, dtype=np.int32)
    offsets[1:] = np.cumsum(np.where(ok, samples, 0))
    values = pa.array(lat[ok].ravel())
    latency = pa.ListArray.from_arrays(pa.array(offsets), values,
                                       mask=pa.array(~ok))
    started = T0 + run * DAY + np.arange(n) * 0.5
    date = time.strftime("%Y-%m-%d", time.gmtime(T0 + run * DAY))
    run_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(T0 + run * DAY))}-{run:06d}"
    rss_base = 40_000 + 8_000 * m + 3_000 * threads
    rss_noise = rng.normal(0, 150, (3, n))
    cols: dict[str, pa.Array] = {}

    def s(name, codes, values):
        cols[name] = _strings(np.asarray(codes), values)

    def const(name, value):
        s(name, np.zeros(n, np.int32), [value])

    def f(name, arr, mask=None):
        cols[name] = pa.array(np.asarray(arr, float), mask=mask)

    def i(name, arr, mask=None):
        cols[name] = pa.array(np.asarray(arr, np.int64), mask=mask)

    const("run_id", run_id)
    const("sweep_kind", "sweep")
    const("sweep_tag", "nightly")
    const("suite", "nightly.toml")
    s("series", (((h * 10 + m) * 2 + v) * 2 + b) * 8 + p * 4 + t,
      [_hash(f"{engine}{k}")[:16] for k in range(len(HOSTS) * 10 * 2 * 2 * 8)])
    cols["started_at"] = pa.array((started * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC"))
    cols["ended_at"] = pa.array(((started + 0.4) * 1e6).astype(np.int64),
                                pa.timestamp("us", tz="UTC"))
    s("host", h, HOSTS)
    s("device_id", h, [_hash(x)[:16] for x in HOSTS])
    s("hostname", h, [f"{x}.lab" for x in HOSTS])
    s("arch", h, ["aarch64", "aarch64", "aarch64", "x86_64"])
    s("cpu_model", h, ["Cortex-A76", "Cortex-A76/A55", "Cortex-X3", "AMD EPYC"])
    i("cores", np.array([4, 8, 8, 16])[h])
    i("mem_total_kb", np.array([8, 16, 12, 64])[h] * 1_000_000)
    s("kernel", h, ["6.6.31", "6.1.75", "5.15.94", "6.18.44"])
    s("os", h, ["Debian GNU/Linux 12"] * 4)
    const("python_version", "3.11.7")
    const("harness_version", "0.1.0")
    s("model", m, MODELS)
    s("model_sha256", m, [_hash(x) for x in MODELS])
    s("artifact_sha256", m * 2 + v, [_hash(f"{engine}{k}") for k in range(20)])
    s("converter", v, [f"{engine}convert {x}" for x in versions])
    s("input_shape", m, [f"x:1x3x{32 * (k + 4)}x{32 * (k + 4)}" for k in range(10)])
    s("input_key", m, [_hash(f"in{k}")[:24] for k in range(10)])
    s("engine_version_requested", v, versions)
    s("engine_version", v, versions)
    s("backend_requested", b, BACKENDS)
    s("backend", b, BACKENDS)
    s("precision_requested", p, PRECISIONS)
    s("precision", p, PRECISIONS)
    i("threads", threads)
    i("process", proc)
    cols["gpu_device"] = pa.nulls(n, pa.string())
    cols["gpu_type"] = pa.nulls(n, pa.string())
    s("engine_options", (b * 2 + p) * 4 + t,
      [f'{{"backend": "{bb}", "numThread": {tt}, "precision": "{pp}"}}'
       for bb in BACKENDS for pp in PRECISIONS for tt in THREADS])
    s("status", status_codes, ["ok", "error"])
    cols["error"] = pa.array(np.where(ok, None, "RuntimeError: session create failed"),
                             pa.string())
    s("phase", status_codes, ["done", "load"])
    cols["notes"] = pa.nulls(n, pa.string())
    i("warmup_iterations", np.full(n, 2))
    i("min_iterations", np.full(n, samples))
    f("min_seconds", np.full(n, 0.5))
    f("load_ms", 10 + 2 * m + rng.random(n))
    f("first_ms", base * 1.3)
    f("warmup_ms", base * 2.1)
    cols["latency_ms"] = latency
    mask = ~ok
    i("iterations", np.full(n, samples), mask)
    f("timed_s", lat.sum(axis=1) / 1000.0, mask)
    f("median_ms", np.median(lat, axis=1), mask)
    f("p90_ms", lat_sorted[:, int(round(0.9 * (samples - 1)))], mask)
    f("mean_ms", mean, mask)
    f("min_ms", lat_sorted[:, 0], mask)
    f("cv", lat.std(axis=1, ddof=1) / mean, mask)
    i("rss_process_start_peak_kb", np.full(n, 32_000))
    i("rss_process_peak_kb", rss_base + 20_000 + rss_noise[2], mask)
    cols["rss_last_peak_kb"] = pa.nulls(n, pa.int64())
    for k, ph in enumerate(("load", "first", "steady")):
        peak = rss_base + 10_000 * k + rss_noise[k]
        i(f"rss_{ph}_peak_kb", peak, mask)
        i(f"rss_{ph}_rss_kb", peak - 500, mask)
        i(f"rss_{ph}_anon_kb", peak * 0.7, mask)
        i(f"rss_{ph}_file_kb", peak * 0.3, mask)
    s("out_sha256", ((m * 2 + v) * 2 + b) * 2 + p, [_hash(f"out{engine}{k}") for k in range(80)])
    i("out_nan", np.zeros(n), mask)
    i("out_inf", np.zeros(n), mask)
    rel = np.where(p == 1, 2e-3, 1e-5) * (1 + m / 10)
    f("out_max_abs_err", rel * 0.1, mask)
    f("out_rel_err", rel, mask)
    f("out_cosine", 1 - rel / 100, mask)
    cols["has_reference"] = pa.array(np.ones(n, bool), mask=mask)
    cols["out_deterministic"] = pa.array(np.ones(n, bool), mask=mask)
    s("outputs_json", m, [f'[{{"name": "out", "shape": [1, 1000], "dtype": "float32", '
                          f'"model": "{x}"}}]' for x in MODELS])
    s("verdict", status_codes, ["ok", "error"])
    s("governor_start", h, ["performance", "performance", "schedutil", "performance"])
    s("governor_end", h, ["performance", "performance", "schedutil", "performance"])
    temp = 45 + 10 * rng.random(n)
    f("temp_max_c_start", temp)
    f("temp_max_c_end", temp + 2 * rng.random(n))
    fmax = np.array([2400.0, 2256.0, 3187.0, 3000.0])[h]
    f("freq_cur_mhz_min_start", fmax * 0.5)
    f("freq_cur_mhz_max_start", fmax)
    f("freq_cur_mhz_min_end", fmax * 0.5)
    f("freq_cur_mhz_max_end", fmax)
    f("freq_max_mhz_start", fmax)
    s("extra_json", t, [f'{{"threads_effective": {x}}}' for x in THREADS])
    cols["schema_version"] = pa.array(np.full(n, SCHEMA_VERSION, np.int64))
    # columns added to the schema later than this script: null
    table = pa.table([cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in SCHEMA],
                     schema=SCHEMA)
    return table, date, run_id


def generate(root: Path, runs: int, samples: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    total = 0
    for run in range(runs):
        for engine in ENGINES:
            table, date, run_id = build_run(run, engine, samples, rng)
            write_parquet(partition_path(root, run_id, {"date": date, "engine": engine}), table)
            total += table.num_rows
    return total


def timed(label, fn, repeat=1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    print(f"{label:58s} {best:7.2f} s")
    return out, best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=80, help="sweeps (12,800 rows each)")
    ap.add_argument("--samples", type=int, default=20, help="latency samples per row")
    ap.add_argument("--keep", help="write the dataset here and keep it")
    ap.add_argument("--repeat", type=int, default=2, help="best of N timings")
    args = ap.parse_args(argv)

    from harness.compare import compare, history
    from harness.compare.load import compare_columns
    from harness.compare.sweeps import runs as all_runs
    from harness.results import load

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="compare-bench-"))
    try:
        rows, gen_s = timed("generate + write dataset", lambda: generate(root, args.runs,
                                                                         args.samples))
        files = list(root.rglob("*.parquet"))
        size = sum(f.stat().st_size for f in files)
        print(f"{'rows / files / bytes on disk':58s} {rows:,} / {len(files)} / {size:,}")
        print(f"{'bytes on disk per row':58s} {size / rows:7.1f}")

        df_all, _ = timed("load() all columns, all rows", lambda: load(root), args.repeat)
        print(f"{'  loaded frame':58s} {len(df_all):,} rows x {df_all.shape[1]} columns")
        del df_all
        cols = compare_columns("engine_version")
        df, _ = timed("load() compare columns, engine=mnn (pushed down)",
                      lambda: load(root, columns=cols, engine="mnn",
                                   engine_version=["3.4.0", "3.6.1"]), args.repeat)
        print(f"{'  loaded frame':58s} {len(df):,} rows x {df.shape[1]} columns")
        res, _ = timed("compare() mnn 3.4.0 vs 3.6.1 over all sweeps",
                       lambda: compare(df, "engine_version", "3.4.0", "3.6.1"), args.repeat)
        c = res.counts()
        print(f"{'  pairs / samples':58s} {len(res.pairs)} / "
              f"{int(res.pairs['n_base'].sum() + res.pairs['n_head'].sum()):,}")
        print(f"{'  latency verdicts':58s} {c['latency']}")
        print(f"{'  bootstrapped pairs (resamples)':58s} {res.info['bootstrapped']} "
              f"({sorted(set(res.pairs.loc[res.pairs['resamples'] > 0, 'resamples']))})")
        runs = list(all_runs(root)["run_id"])
        two = load(root, run_id=[runs[-2], runs[-1]])
        res2, _ = timed("compare() two sweeps (run_id), all engines",
                        lambda: compare(two, "run_id", runs[-2], runs[-1]), args.repeat)
        print(f"{'  pairs / latency verdicts':58s} {len(res2.pairs)} / {res2.counts()['latency']}")
        hist_df = load(root, columns=["model", "input_shape", "engine", "backend", "precision",
                                      "threads", "cores", "host", "run_id", "sweep_tag",
                                      "engine_version_requested",
                                      "started_at", "engine_version", "status", "median_ms"],
                       engine="ncnn")
        hist, _ = timed("history() ncnn median_ms over 80 sweeps (+change points)",
                        lambda: history(hist_df, "median_ms", tag="nightly"))
        cps = hist[hist["change_point"]]
        n_series = hist.groupby(hist.attrs["key"], observed=True).ngroups
        print(f"{'  series / change points (expected: m3 at sweep 40, 128)':58s} "
              f"{n_series} / {len(cps)} (models {sorted(set(cps['model']))}, "
              f"steps {sorted(set(cps['step']))})")
        hist_df = df = two = None  # free memory before the largest load
        everything = load(root, columns=compare_columns("backend"))
        res3, _ = timed("compare() backend cpu vs vulkan over all rows",
                        lambda: compare(everything, "backend", "cpu", "vulkan"), 1)
        print(f"{'  rows / pairs / samples':58s} {len(everything):,} / {len(res3.pairs)} / "
              f"{int(res3.pairs['n_base'].sum() + res3.pairs['n_head'].sum()):,}")
        print(f"{'  latency verdicts':58s} {res3.counts()['latency']}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
