"""An armv7l test host: a cached Debian bookworm armhf root filesystem run under
qemu-user (binfmt_misc), whose own armhf sshd serves logins on a loopback port.

Mounts: nothing is ever mounted in this machine's mount namespace.  Both the build
(debootstrap, pip) and the running sshd live in a private mount namespace
(``unshare --mount --propagation private``) in which /proc, /dev, /sys and a tmpfs
/run are mounted inside the rootfs; the kernel drops those mounts when the last
process of the namespace exits, so a killed test session leaves no mounts behind
and the real /proc and /dev are never touched.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from . import keys, procs
from .sshd import (
    LOOPBACK,
    TOKEN_ENV,
    DEFAULT_PATH,
    SshdStartError,
    SshHost,
    die_with_parent,
    free_port,
    spawn_sshd,
    sshd_config_text,
)

SUITE = "bookworm"
ARCH = "armhf"
VARIANT = "minbase"
# The brief's list plus procps (ps/pkill) and time (/usr/bin/time), which a real
# board has and the harness may call remotely.
PACKAGES = (
    "python3",
    "python3-venv",
    "python3-pip",
    "openssh-server",
    "python3-numpy",
    # Python's headers, for cross-building engines' Python modules against this host
    "libpython3.11-dev",
    "procps",
    "time",
)
# ncnn armv7l wheel (manylinux_2_31_armv7l fits bookworm's glibc 2.36, python 3.11).
# Pinned so the rootfs is reproducible; override with HARNESS_ARMHF_NCNN_VERSION.
NCNN_VERSION = "1.0.20261020"
NCNN_PLATFORM = "manylinux_2_31_armv7l"
REMOTE_PYTHON_VERSION = "3.11"  # bookworm armhf ships python3.11
# Bump when the build recipe changes in a way the key below does not capture.
RECIPE_VERSION = 1
MARKER = ".harness-rootfs.json"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

Progress = Callable[[str], None]


def _stderr_progress(msg: str) -> None:
    print(f"[armhf-rootfs] {msg}", file=sys.stderr, flush=True)


def default_cache_dir() -> Path:
    env = os.environ.get("HARNESS_TEST_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "harness-test"


def ncnn_version() -> str:
    return os.environ.get("HARNESS_ARMHF_NCNN_VERSION", NCNN_VERSION)


def rootfs_key() -> str:
    spec = {
        "suite": SUITE,
        "arch": ARCH,
        "variant": VARIANT,
        "packages": sorted(PACKAGES),
        "ncnn": ncnn_version(),
        "recipe": RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


# -- Debian mirror as configured for apt on this machine ----------------------------------


def _apt_source_files() -> list[Path]:
    files = [Path("/etc/apt/sources.list")]
    files += sorted(Path(p) for p in glob.glob("/etc/apt/sources.list.d/*.list"))
    files += sorted(Path(p) for p in glob.glob("/etc/apt/sources.list.d/*.sources"))
    return [f for f in files if f.is_file()]


def _sources_entries() -> list[tuple[list[str], list[str], list[str]]]:
    """(uris, suites, components) for every enabled ``deb`` entry of apt's sources."""
    out = []
    for f in _apt_source_files():
        text = f.read_text(errors="replace")
        if f.suffix == ".sources":  # deb822 stanzas
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                out.append(
                    (
                        fields.get("uris", "").split(),
                        fields.get("suites", "").split(),
                        fields.get("components", "").split(),
                    )
                )
        else:  # one-line format: deb [opts] uri suite comp...
            for line in text.splitlines():
                line = line.split("#", 1)[0].strip()
                if not line.startswith("deb "):
                    continue
                line = re.sub(r"\[[^\]]*\]", " ", line[4:])
                parts = line.split()
                if len(parts) >= 2:
                    out.append(([parts[0]], [parts[1]], parts[2:]))
    return out


def debian_mirror() -> str:
    """The Debian archive URI apt uses for ``bookworm`` on this machine (no other
    network is reachable); ``HARNESS_DEBIAN_MIRROR`` overrides."""
    env = os.environ.get("HARNESS_DEBIAN_MIRROR")
    if env:
        return env
    for uris, suites, comps in _sources_entries():
        if SUITE in suites and "main" in comps:
            for uri in uris:
                if "security" not in uri:
                    return uri.rstrip("/")
    return DEFAULT_MIRROR


def apt_proxy_env() -> dict[str, str]:
    """http_proxy/https_proxy for debootstrap (wget) if apt has a proxy configured."""
    env: dict[str, str] = {}
    for scheme in ("http", "https"):
        try:
            out = subprocess.run(
                ["apt-config", "shell", "P", f"Acquire::{scheme}::Proxy"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        m = re.match(r"P='([^']*)'", out.strip())
        if m and m.group(1) and m.group(1).upper() != "DIRECT":
            env[f"{scheme}_proxy"] = m.group(1)
    return env


# -- running things inside a private mount namespace ----------------------------------------

_NS_MOUNTS = r"""
set -e
R="$1"; shift
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount --rbind /sys "$R/sys"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mkdir -p "$R/run/sshd" "$R/run/lock"
exec "$@"
"""


def in_private_ns(argv: list[str]) -> list[str]:
    """argv run in a private mount namespace (mounts there never reach this one)."""
    return ["unshare", "--mount", "--propagation", "private", *argv]


def chroot_argv(rootfs: Path, argv: list[str]) -> list[str]:
    """argv run inside ``rootfs`` with /proc, /dev, /sys, /run mounted (private ns)."""
    return in_private_ns(["sh", "-c", _NS_MOUNTS, "ns-mounts", str(rootfs), "chroot", str(rootfs), *argv])


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                out.append(mnt)
    return out


def _run_streaming(
    argv: list[str],
    progress: Progress,
    env: dict[str, str] | None = None,
    label: str = "",
    keep_fds: tuple[int, ...] = (),
) -> None:
    """Run a command, forwarding its output line by line to ``progress``.

    The command gets SIGKILL if this process dies (PR_SET_PDEATHSIG), and inherits
    ``keep_fds`` (the build lock: its descendants keep holding the lock until they
    are gone, so nobody deletes a build dir that an orphan is still writing)."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
        start_new_session=True,
        pass_fds=keep_fds,
        preexec_fn=die_with_parent(signal.SIGKILL),
    )
    tail: list[str] = []
    last_phase, last_time, skipped = "", 0.0, 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-40:]
            if not line:
                continue
            # debootstrap says "I: Retrieving/Validating/Unpacking/Configuring <pkg>" for
            # every package: show each phase change and then one line per 10 s.
            m = re.match(r"I: (\w+)", line)
            phase = m.group(1) if m else ""
            now = time.monotonic()
            if m and phase == last_phase and now - last_time < 10:
                skipped += 1
                continue
            more = f" (+{skipped} lines)" if skipped else ""
            progress(f"{label}{line}{more}")
            last_phase, last_time, skipped = phase, now, 0
        rc = proc.wait()
    except BaseException:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    if rc != 0:
        raise RuntimeError(f"{argv[:6]}... failed with exit code {rc}:\n" + "\n".join(tail))


def _check_binfmt() -> None:
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-arm")
    try:
        ok = entry.read_text().startswith("enabled")
    except OSError:
        ok = False
    if not ok:
        raise RuntimeError(
            "binfmt_misc has no enabled qemu-arm entry (/proc/sys/fs/binfmt_misc/qemu-arm): "
            "run `bash scripts/install-test-deps.sh` as root (it mounts binfmt_misc and "
            "runs `update-binfmts --enable qemu-arm`)"
        )


# -- the cached rootfs ----------------------------------------------------------------------------


def read_marker(rootfs: Path) -> dict | None:
    try:
        return json.loads((Path(rootfs) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def ensure_armhf_rootfs(cache_dir: Path | str | None = None, progress: Progress | None = None) -> Path:
    """Path of a complete Debian bookworm armhf rootfs (with ncnn's armv7l wheel),
    built once into ``cache_dir`` (default ``$HARNESS_TEST_CACHE`` or
    ``~/.cache/harness-test``) and reused while its key (package list, ncnn version,
    recipe) is unchanged.  The build goes to a temp dir renamed into place only when
    complete, with a marker file, under an exclusive lock."""
    progress = progress or _stderr_progress
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = rootfs_key()
    final = cache_dir / f"armhf-{SUITE}-{key}"
    if _complete(final, key):
        return final

    lock_path = cache_dir / f".armhf-{SUITE}-{key}.lock"
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"another process is building {final.name}; waiting for its lock")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _complete(final, key):
            return final
        if final.exists():  # present but no valid marker: not ours to trust
            _remove_tree(final, progress)
        for stale in cache_dir.glob(f".build-armhf-{SUITE}-{key}-*"):
            _remove_tree(stale, progress)
        _check_binfmt()
        build = Path(tempfile.mkdtemp(prefix=f".build-armhf-{SUITE}-{key}-", dir=cache_dir))
        try:
            rootfs = build / "rootfs"
            info = _build(rootfs, cache_dir, key, progress, keep_fds=(lock.fileno(),))
            (rootfs / MARKER).write_text(json.dumps(info, indent=2) + "\n")
            os.rename(rootfs, final)
        finally:
            _remove_tree(build, progress)
    progress(f"rootfs ready: {final} (ncnn {info['ncnn_version']}, {info['build_seconds']:.0f} s)")
    return final


def _complete(path: Path, key: str) -> bool:
    m = read_marker(path)
    return bool(m) and m.get("key") == key


def _remove_tree(path: Path, progress: Progress) -> None:
    if not path.exists():
        return
    mounted = _mounts_under(path)
    if mounted:  # never rm -rf through a mount point (could be a real /dev or /proc)
        progress(f"not removing {path}: mounts below it: {mounted}")
        return
    shutil.rmtree(path, ignore_errors=True)


def _download_ncnn_wheel(cache_dir: Path, progress: Progress, keep_fds: tuple[int, ...] = ()) -> Path:
    wheels = cache_dir / "wheels"
    wheels.mkdir(exist_ok=True)
    version = ncnn_version()
    pattern = f"ncnn-{version}-*{NCNN_PLATFORM}*.whl"
    found = sorted(wheels.glob(pattern))
    if found:
        return found[-1]
    progress(f"downloading ncnn=={version} wheel for {NCNN_PLATFORM}")
    _run_streaming(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--only-binary=:all:", "--platform", NCNN_PLATFORM,
            "--python-version", REMOTE_PYTHON_VERSION, "--implementation", "cp",
            "-d", str(wheels), f"ncnn=={version}",
        ],
        progress,
        label="pip: ",
        keep_fds=keep_fds,
    )
    found = sorted(wheels.glob(pattern))
    if not found:
        raise RuntimeError(f"pip download produced no {pattern} in {wheels}")
    return found[-1]


def _build(rootfs: Path, cache_dir: Path, key: str, progress: Progress, keep_fds: tuple[int, ...] = ()) -> dict:
    t0 = time.monotonic()
    wheel = _download_ncnn_wheel(cache_dir, progress, keep_fds)
    mirror = debian_mirror()
    debs = cache_dir / "debs"
    debs.mkdir(exist_ok=True)
    env = {**os.environ, **apt_proxy_env(), "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    progress(f"debootstrap {SUITE} {ARCH} from {mirror} into {rootfs} (a few minutes under qemu)")
    _run_streaming(
        in_private_ns(
            [
                "debootstrap",
                f"--arch={ARCH}",
                f"--variant={VARIANT}",
                f"--include={','.join(PACKAGES)}",
                f"--cache-dir={debs}",
                SUITE,
                str(rootfs),
                mirror,
            ]
        ),
        progress,
        env=env,
        label="debootstrap: ",
        keep_fds=keep_fds,
    )
    progress(f"debootstrap done after {time.monotonic() - t0:.0f} s; installing {wheel.name}")
    shutil.copy2(wheel, rootfs / "tmp" / wheel.name)
    chroot_env = {"PATH": DEFAULT_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run_streaming(
        chroot_argv(
            rootfs,
            ["python3", "-m", "pip", "install", "--break-system-packages", "--no-deps", "--no-index",
             "--no-cache-dir", f"/tmp/{wheel.name}"],
        ),
        progress,
        env=chroot_env,
        label="pip(armhf): ",
        keep_fds=keep_fds,
    )
    (rootfs / "tmp" / wheel.name).unlink()
    out = subprocess.run(
        chroot_argv(
            rootfs,
            ["sh", "-c", "uname -m; python3 -c 'import ncnn, numpy, sys; "
             "print(ncnn.__version__); print(numpy.__version__); print(sys.version.split()[0])'"],
        ),
        capture_output=True,
        text=True,
        env=chroot_env,
        timeout=600,
    )
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) < 4 or lines[0] != "armv7l":
        raise RuntimeError(f"armhf rootfs check failed (rc {out.returncode}):\n{out.stdout}\n{out.stderr}")
    machine, ncnn_ver, numpy_ver, py_ver = lines[:4]
    # Host keys made by openssh-server's postinst are shared by every copy of the
    # cache; the test hosts use their own, so drop them.
    for p in (rootfs / "etc" / "ssh").glob("ssh_host_*"):
        p.unlink()
    shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    (rootfs / "var" / "cache" / "apt" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "harness-work").mkdir(exist_ok=True)
    info = {
        "key": key,
        "suite": SUITE,
        "arch": ARCH,
        "variant": VARIANT,
        "packages": list(PACKAGES),
        "mirror": mirror,
        "machine": machine,
        "ncnn_version": ncnn_ver,
        "ncnn_wheel": wheel.name,
        "numpy_version": numpy_ver,
        "python_version": py_ver,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.monotonic() - t0, 1),
    }
    progress(f"built: {info}")
    return info


# -- the armv7l host ------------------------------------------------------------------------------


def _clean_stale_instances(rootfs: Path) -> None:
    """Config dirs / workdirs left by killed sessions (their sshd is gone)."""
    base = rootfs / "etc" / "ssh" / "harness"
    if not base.is_dir():
        return
    for d in base.iterdir():
        try:
            pid = int((d / "sshd.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stale = not (procs.alive(pid) and d.name.encode() in cmdline)
        except (OSError, ValueError):
            # No pid file (sshd removes it on exit) or its process is gone; give an
            # instance that is still starting up some time before calling it stale.
            try:
                stale = time.time() - d.stat().st_mtime > 300
            except OSError:
                continue
        if stale:
            shutil.rmtree(d, ignore_errors=True)
            wd = rootfs / "harness-work" / d.name
            if wd.is_dir() and not _mounts_under(wd):
                shutil.rmtree(wd, ignore_errors=True)


def start_armv7_host(
    tmpdir: Path | str,
    cache_dir: Path | str | None = None,
    *,
    name: str = "armv7",
    progress: Progress | None = None,
) -> SshHost:
    """Start the armhf sshd of the cached rootfs (under qemu-arm) on a free loopback port.

    Over SSH ``uname -m`` prints ``armv7l``; the host's python is ``/usr/bin/python3``
    with numpy (Debian) and ncnn (armv7l wheel).  Per-instance files live in the
    rootfs under ``/etc/ssh/harness/<token>/`` and the workdir is
    ``/harness-work/<token>``; stop() removes both.
    """
    rootfs = ensure_armhf_rootfs(cache_dir, progress)
    _check_binfmt()
    marker = read_marker(rootfs) or {}
    tmpdir = Path(tmpdir)
    base = tmpdir / f"sshhost-{name}"
    base.mkdir(parents=True, exist_ok=True)
    _clean_stale_instances(rootfs)

    token = secrets.token_hex(8)
    conf_rel = f"/etc/ssh/harness/{token}"
    conf_dir = rootfs / conf_rel.lstrip("/")
    conf_dir.mkdir(parents=True)
    workdir_rel = f"/harness-work/{token}"
    (rootfs / workdir_rel.lstrip("/")).mkdir(parents=True)

    host_key, host_pub = keys.generate_ed25519(conf_dir / "ssh_host_ed25519_key", f"host-{name}")
    client_key, client_pub = keys.generate_ed25519(base / "id_ed25519", f"client-{name}")
    keys.write_authorized_keys(conf_dir / "authorized_keys", client_pub)

    def cleanup() -> None:
        shutil.rmtree(conf_dir, ignore_errors=True)
        wd = rootfs / workdir_rel.lstrip("/")
        if not _mounts_under(wd):
            shutil.rmtree(wd, ignore_errors=True)

    try:
        last_exc: Exception | None = None
        for _ in range(3):
            port = free_port()
            (conf_dir / "sshd_config").write_text(
                sshd_config_text(
                    port=port,
                    host_key=f"{conf_rel}/ssh_host_ed25519_key",
                    pid_file=f"{conf_rel}/sshd.pid",
                    authorized_keys=f"{conf_rel}/authorized_keys",
                    setenv={TOKEN_ENV: token, "PATH": DEFAULT_PATH},
                )
            )
            log_path = base / "sshd.log"
            try:
                proc = spawn_sshd(
                    chroot_argv(rootfs, ["/usr/sbin/sshd", "-D", "-e", "-f", f"{conf_rel}/sshd_config"]),
                    log_path,
                    port,
                    timeout=120,
                )
                break
            except SshdStartError as exc:
                last_exc = exc
                if "Address already in use" not in str(exc):
                    raise
        else:
            raise SshdStartError(f"could not start the armhf sshd: {last_exc}")
    except BaseException:
        cleanup()
        raise

    known = keys.write_known_hosts(base / "known_hosts", LOOPBACK, port, host_pub)
    host = SshHost(
        name=name,
        port=port,
        identity_file=client_key,
        known_hosts=known,
        arch="armv7l",
        workdir=workdir_rel,
        python="/usr/bin/python3",
        tags={"emulator": "qemu-arm", "ncnn": str(marker.get("ncnn_version", ""))},
        local_root=rootfs,
        sshd_log=log_path,
        token=token,
        _proc=proc,
    )
    host._cleanups.append(cleanup)
    return host
