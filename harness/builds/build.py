"""Build an engine from source for one target, once: the product is a wheel the host installs.

A build is keyed by (engine, source identity, build options, target) and kept under
``cache_root()/builds/KEY/`` (``build.json``, the wheel, the engine's benchmark tools, the
log). A second request finds it there and builds nothing; two executors asking at once wait
on one lock. Compilation goes through ccache (``cache_root()/ccache``), with the base
directory set so that objects are shared between builds of the same files whatever folder a
build ran in. Sources are unpacked once per identity (``builds/work/ID/src``).

Each engine's recipe (``harness.builds.recipes``) knows its CMake flags and how its Python
module is made; this module only drives CMake and Ninja, logs, reports progress and packs.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..cache import cache_root
from ..errors import HarnessError
from .source import EngineSource, SourceError, short_identity
from .target import BuildTarget
from .wheel import pack

log = logging.getLogger("harness.builds")

BUILD_TIMEOUT_S = 3 * 3600.0  # one CMake or Ninja step; a board-sized build is minutes
RECIPE_VERSION = 1  # bump when what a recipe produces changes for the same inputs
Progress = Callable[[str], None]


class BuildFailed(HarnessError):
    """The engine did not build (compile or link error, missing toolchain or headers). The
    message names the source and target and quotes the compiler's relevant lines; ``log`` is
    the full build log (or None)."""

    def __init__(self, message: str, log_path: Path | None = None):
        super().__init__(message)
        self.log = log_path


@dataclass
class Build:
    """A finished build: ``wheel`` (install it), ``tools`` (benchmark programs by name),
    ``info`` (build.json: identity, options, target, engine version, seconds), and
    ``cache_hit`` (True when nothing was compiled for this request)."""

    key: str
    wheel: Path
    tools: dict[str, Path]
    info: dict
    cache_hit: bool


@dataclass
class BuildContext:
    """What a recipe works with. ``src``: the unpacked source; ``build``: the CMake build
    directory; ``stage``: lay out the wheel's site-packages files here; ``tools``: copy
    benchmark programs here; ``notes``: what the recipe did to the source or build that its
    options do not say (kept in build.json as ``notes``)."""

    source: EngineSource
    target: BuildTarget
    src: Path
    build: Path
    stage: Path
    tools: Path
    log_path: Path
    env: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def run(self, argv: list[str], what: str, cwd: Path | None = None,
            progress: Progress | None = None) -> None:
        """Run one build command, its output appended to the log. Raises BuildFailed with the
        relevant lines when it fails."""
        run_logged(argv, what, cwd or self.build, self.env, self.log_path, progress,
                   f"{self.source.engine} {self.source.name} for {self.target.key()}")


def run_logged(argv, what, cwd, env, log_path: Path, progress: Progress | None, label: str):
    with open(log_path, "a") as logf:
        logf.write(f"\n$ {' '.join(map(str, argv))}\n")
        logf.flush()
        t0 = time.monotonic()
        p = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, errors="replace")
        last_tenth = -1
        assert p.stdout is not None
        # the deadline holds for a step that prints nothing too
        watchdog = threading.Timer(BUILD_TIMEOUT_S, p.kill)
        watchdog.daemon = True
        watchdog.start()
        for line in p.stdout:
            logf.write(line)
            m = _NINJA.match(line)
            if m and progress:
                done, total = int(m.group(1)), int(m.group(2))
                tenth = done * 10 // max(total, 1)
                if tenth > last_tenth:
                    last_tenth = tenth
                    progress(f"building {label}: {what} {done}/{total} "
                             f"({time.monotonic() - t0:.0f} s)")
        rc = p.wait()
        watchdog.cancel()
    if rc != 0:
        raise BuildFailed(f"{label}: {what} failed (exit {rc}): "
                          f"{relevant_lines(log_path.read_text(errors='replace'))}", log_path)


_NINJA = re.compile(r"^\[(\d+)/(\d+)\] ")
_ERROR = re.compile(r"(\berror\b|\bError\b|undefined reference|No such file|fatal|CMake Error)")


def relevant_lines(text: str, limit: int = 600) -> str:
    """The compiler's own words about a failure: the first lines that say error (at most
    four, joined by " | "), else the last line of the log; at most ``limit`` characters."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = list(dict.fromkeys(ln for ln in lines if _ERROR.search(ln) and not ln.startswith("$ ")))
    picked = errs[:4] if errs else lines[-1:]
    return " | ".join(picked)[:limit]


def ccache_counts(env: dict) -> dict:
    """ccache's counters for the build cache (``{"hits": n, "misses": n}``); empty when
    ccache is missing or too old for ``--print-stats`` (ccache 4.x has it)."""
    if not shutil.which("ccache"):
        return {}
    try:
        p = subprocess.run(["ccache", "--print-stats"], capture_output=True, text=True, env=env,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    stats = dict(ln.split("\t", 1) for ln in p.stdout.splitlines() if "\t" in ln)
    try:
        return {"hits": int(stats.get("direct_cache_hit", 0))
                + int(stats.get("preprocessed_cache_hit", 0)),
                "misses": int(stats.get("cache_miss", 0))}
    except ValueError:
        return {}


def _unpack(source: EngineSource, work: Path) -> Path:
    """The source tree of ``source`` (unpacked or exported once per identity)."""
    src = work / "src"
    if (work / ".unpacked").exists():
        return src
    tmp = work / f"src.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if source.is_git:
            ref = source.identity().split(":", 1)[1]
            archive = subprocess.run(["git", "-C", source.path, "archive", "--format=tar", ref],
                                     capture_output=True, timeout=600)
            if archive.returncode != 0:
                raise SourceError(f"{source.path}: git archive {ref} failed: "
                                  f"{archive.stderr.decode(errors='replace').strip()[-300:]}")
            subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        else:
            with tarfile.open(source.path) as tf:
                tf.extractall(tmp, filter="data")
            # a tarball holds one top folder ("MNN-3.1.0/"): build inside it
            tops = [p for p in tmp.iterdir()]
            if len(tops) == 1 and tops[0].is_dir():
                tops[0].rename(tmp.parent / "src.top")
                shutil.rmtree(tmp)
                (tmp.parent / "src.top").rename(tmp)
    except (tarfile.TarError, OSError, subprocess.CalledProcessError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SourceError(f"{source.path}: cannot unpack: {e}") from None
    shutil.rmtree(src, ignore_errors=True)
    tmp.rename(src)
    (work / ".unpacked").touch()
    return src


def build_root() -> Path:
    d = cache_root() / "builds"
    d.mkdir(parents=True, exist_ok=True)
    return d


def build_key(source: EngineSource, target_key: str) -> str:
    """``mnn-<identity 12>-<options and recipe 8>-armv7l-cp311``: a changed recipe (its file,
    or RECIPE_VERSION of this driver) is another build."""
    from ..cache import sha256_text
    from .recipes import recipe_text
    how = sha256_text(source.key(), str(RECIPE_VERSION), recipe_text(source.engine))[:8]
    return f"{source.engine}-{short_identity(source.identity())}-{how}-{target_key}"


_FAILED: dict[str, BuildFailed] = {}  # this process's failed builds: asked once per run


def build(source: EngineSource, target_key: str, target: Callable[[], BuildTarget],
          progress: Progress | None = None) -> Build:
    """The build of ``source`` for the target ``target_key`` ("armv7l-cp311"), from the cache
    or compiled now; ``target()`` gives the full BuildTarget (headers: it may copy them from
    the host) and is called only when something must be compiled.

    Raises BuildFailed (and SourceError, a HarnessError, for a source that cannot be read).
    A failed build is not kept: a later run tries again (the source may have been fixed), but
    this process asks once."""
    from .recipes import recipe_for
    say = progress or log.info
    key = build_key(source, target_key)
    if key in _FAILED:
        raise _FAILED[key]
    root = build_root()
    out = root / key
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second executor for this target waits here
        for stale in root.glob(f"{key}.tmp-*"):  # a build killed before it finished
            shutil.rmtree(stale, ignore_errors=True)
        found = _load(out)
        if found is not None:
            say(f"build cache hit: {source.engine} {source.name} for {target_key} ({key})")
            return found
        try:
            t = target()
            why = t.missing_toolchain()
            if why:
                raise BuildFailed(f"{source.engine} {source.name} for {target_key}: {why}")
            return _build(source, t, key, out, recipe_for(source.engine), say)
        except BuildFailed as e:
            raise _failed(key, e) from None


def _failed(key: str, e: BuildFailed) -> BuildFailed:
    _FAILED[key] = e
    return e


def _load(out: Path) -> Build | None:
    try:
        info = json.loads((out / "build.json").read_text())
    except (OSError, ValueError):
        return None
    wheel = out / info["wheel"]
    if not wheel.is_file():
        return None
    tools = {k: out / v for k, v in info.get("tools", {}).items()}
    return Build(key=out.name, wheel=wheel, tools=tools, info=info, cache_hit=True)


def _build(source: EngineSource, target: BuildTarget, key: str, out: Path, recipe,
           say: Progress) -> Build:
    t0 = time.monotonic()
    root = build_root()
    work = root / "work" / short_identity(source.identity())
    src = _unpack(source, work)
    bdir = work / f"build-{key}"
    shutil.rmtree(bdir, ignore_errors=True)
    tmp = root / f"{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "stage").mkdir(parents=True)
    (tmp / "tools").mkdir()
    bdir.mkdir(parents=True)
    log_path = tmp / "build.log"
    env = dict(os.environ)
    env.update(CCACHE_DIR=str(cache_root() / "ccache"), CCACHE_BASEDIR=str(root / "work"),
               CCACHE_NOHASHDIR="1", CCACHE_COMPILERCHECK="content")
    ctx = BuildContext(source=source, target=target, src=src, build=bdir, stage=tmp / "stage",
                       tools=tmp / "tools", log_path=log_path, env=env)
    counts0 = ccache_counts(env)
    say(f"building {source.engine} {source.name} for {target.key()} "
        f"(backends {', '.join(source.options()['backends'])}) from {source.identity()}")
    cc, cxx = target.compilers()
    launcher = (["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
                if shutil.which("ccache") else [])
    configure = (["cmake", "-S", src, "-B", bdir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release"]
                 + launcher + target.cmake_toolchain(bdir / "toolchain.cmake")
                 + ([f"-DCMAKE_C_COMPILER={cc}", f"-DCMAKE_CXX_COMPILER={cxx}"]
                    if target.native else [])
                 + recipe.configure_args(ctx) + list(source.cmake_args))
    try:
        ctx.run(configure, "configure")
        ctx.run(["ninja", "-j", str(os.cpu_count() or 2)] + recipe.ninja_targets(ctx),
                "compile", progress=say)
        version = recipe.finish(ctx)
        local = f"src.{short_identity(source.identity())}.{source.key()[:8]}"
        wheel = pack(ctx.stage, recipe.dist, f"{version}+{local}",
                     f"{target.python_tag}-{target.python_tag}-linux_{target.arch}", tmp,
                     summary=f"{source.engine} {source.name} built from {source.identity()}")
    except BuildFailed as e:
        # keep the log of a failed build where the message can point
        failed_log = root / f"{key}.failed.log"
        shutil.copyfile(log_path, failed_log)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(bdir, ignore_errors=True)
        raise BuildFailed(f"{e} (log: {failed_log})", failed_log) from None
    tools = {p.name: f"tools/{p.name}" for p in ctx.tools.iterdir()}
    counts1 = ccache_counts(env)
    ccache = ({k: counts1[k] - counts0.get(k, 0) for k in counts1} if counts1 else None)
    info = {"key": key, "engine": source.engine, "name": source.name,
            "identity": source.identity(), "options": source.options(),
            "target": target.key(), "arch": target.arch, "python_tag": target.python_tag,
            "engine_version": version, "wheel": wheel.name, "tools": tools,
            "seconds": round(time.monotonic() - t0, 1), "recipe": RECIPE_VERSION,
            "ccache": ccache,  # compiler calls answered from ccache during this build
            "notes": list(ctx.notes),
            "built_at": time.time()}
    (tmp / "build.json").write_text(json.dumps(info, indent=1, sort_keys=True))
    shutil.rmtree(tmp / "stage")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    shutil.rmtree(bdir, ignore_errors=True)  # ccache keeps the objects
    say(f"built {source.engine} {source.name} for {target.key()} in {info['seconds']:.0f} s"
        + (f" (ccache: {ccache['hits']} hits, {ccache['misses']} misses)" if ccache else ""))
    return Build(key=key, wheel=out / wheel.name,
                 tools={k: out / v for k, v in tools.items()}, info=info, cache_hit=False)
