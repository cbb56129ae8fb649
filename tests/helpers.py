"""Helpers shared by several test modules (test modules do not import each other)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def tiny_suite(name: str, *, secs: float = 1.0, procs: int = 1, timeout_s: float = 60,
               iterations: int = 3) -> str:
    """The TOML of a one-configuration suite that fault tests measure many times:
    `reduction_sum_block` on onnxruntime, 1 thread, no warmup, `procs` processes of at least
    `iterations` runs and `secs` seconds each."""
    return (f'name = "{name}"\nengines = {{ onnxruntime = "installed" }}\nthreads = [1]\n'
            f"[measure]\nwarmup = 0\nmin_iterations = {iterations}\nmin_seconds = {secs}\n"
            f"processes = {procs}\ntimeout_s = {timeout_s}\n"
            '[[models]]\nname = "m"\nbuiltin = "reduction_sum_block"\n')


def measure_block(iters: int = 3, procs: int = 1, warmup: int = 1, timeout_s: int = 300) -> str:
    """A suite's [measure] table for the quick end-to-end runs of the int8 tests: a fixed
    iteration count (min_seconds 0)."""
    return (f"\n[measure]\nwarmup = {warmup}\nmin_iterations = {iters}\nmin_seconds = 0.0\n"
            f"processes = {procs}\ntimeout_s = {timeout_s}\n")


def run_suite_text(d: Path, text: str):
    """Write ``text`` as d/suite.toml, run it on this machine (threads placement, no progress)
    into d/results and return the dataset as a DataFrame."""
    from harness.config.suite import load_suite
    from harness.coordinator import run_suite
    from harness.results import load
    (d / "suite.toml").write_text(text)
    run_suite(load_suite(d / "suite.toml"), d / "results", progress=False, placement="threads")
    return load(d / "results")


# Chromium as root in a sandbox with no network: no sandbox, no GPU, no background traffic
# (whose refused connections slow every start), a fresh profile per test.
HEADLESS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run")


def chromium(browser: str, profile: Path, *args: str,
             timeout: float = 90) -> subprocess.CompletedProcess | None:
    """Run headless Chromium with ``args`` (e.g. ``--screenshot=PNG``, a page URI); the
    finished process (text output), or None when it did not finish within ``timeout`` s."""
    try:
        return subprocess.run([browser, *HEADLESS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None


def toml_value(v) -> str:
    """v as a TOML value: inline table, boolean, integer or basic string."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_inventory(path: Path, entries: list[dict]) -> Path:
    """Write an inventory file with one [[hosts]] table per entry; returns path."""
    text = ""
    for e in entries:
        text += "[[hosts]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in e.items()) + "\n"
    path.write_text(text)
    return path


def fake_sysfs(root: Path, *, max_khz: dict | None = None, cur_khz: dict | None = None,
               temps_c: list | None = None, governor: str | None = None) -> Path:
    """A directory laid out like /sys for HARNESS_SYSFS_ROOT: per-core cpufreq
    (devices/system/cpu/cpuN/cpufreq/{cpuinfo_max_freq,scaling_cur_freq,scaling_governor},
    kHz) and thermal zones (class/thermal/thermal_zoneN/temp, millidegrees). Calling it again
    on the same root rewrites the values (a device heating up). Returns root."""
    for cpu in sorted(set(max_khz or {}) | set(cur_khz or {})):
        d = Path(root) / f"devices/system/cpu/cpu{cpu}/cpufreq"
        d.mkdir(parents=True, exist_ok=True)
        if max_khz and cpu in max_khz:
            (d / "cpuinfo_max_freq").write_text(f"{max_khz[cpu]}\n")
        if cur_khz and cpu in cur_khz:
            (d / "scaling_cur_freq").write_text(f"{cur_khz[cpu]}\n")
        if governor:
            (d / "scaling_governor").write_text(governor + "\n")
    for i, t in enumerate(temps_c or []):
        d = Path(root) / f"class/thermal/thermal_zone{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "temp").write_text(f"{int(round(t * 1000))}\n")
    Path(root).mkdir(parents=True, exist_ok=True)
    return Path(root)


def engine_src(name: str) -> Path:
    """A source tarball of ``../shared/engine-src/`` (beside the checkout; the issue that asks
    for source builds puts them there, since tests have no network), e.g.
    ``engine_src("MNN-3.1.0.tar.xz")``. ``HARNESS_ENGINE_SRC`` names another folder."""
    import os
    root = Path(os.environ.get("HARNESS_ENGINE_SRC")
                or Path(__file__).resolve().parents[2] / "shared" / "engine-src")
    p = root / name
    if not p.is_file():
        raise FileNotFoundError(f"{p}: engine source tarball missing (set HARNESS_ENGINE_SRC)")
    return p
