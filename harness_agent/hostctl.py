"""Small host-side operations the coordinator runs over SSH (stdlib only, Python 3.9+).

    python -m <agent>.hostctl probe
    python -m <agent>.hostctl have DIR
    python -m <agent>.hostctl verify FILE SHA256
    python -m <agent>.hostctl lock DIR OWNER TTL_S WAIT_S
    python -m <agent>.hostctl renew DIR OWNER TTL_S
    python -m <agent>.hostctl unlock DIR OWNER
    python -m <agent>.hostctl venv DIR WHEEL [WHEEL...]

Each prints one JSON line on stdout; a failure exits 3 with a JSON error line
({"error": ...}). The functions behind the verbs return a value or raise HostctlError; only
main() prints and chooses the exit status, so the coordinator can call them in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import List, Optional

from .engines import adapter_names, load_adapter


class HostctlError(Exception):
    """A host-side operation failed; the message is the one-line reason."""


def probe() -> dict:
    from . import sysinfo
    libc = platform.libc_ver()
    info = dict(sysinfo.static_info())
    info.update({
        "python": sys.executable,
        "python_tag": "cp%d%d" % sys.version_info[:2],
        "python_version": platform.python_version(),
        "libc": "%s %s" % libc if libc[0] else None,
        "glibc": libc[1] if libc[0] == "glibc" else None,
        "engines": dict((name, load_adapter(name).probe()) for name in adapter_names()),
        # the sweep's starting temperature: [measure] cooldown_to_c waits to within N of it
        "temp_max_c": sysinfo.hottest_c(),
    })
    return info


def have(d: str) -> dict:
    try:
        return {"names": sorted(os.listdir(d))}
    except FileNotFoundError:
        return {"names": []}


def verify(path: str, sha: str) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != sha:
        raise HostctlError("sha256 mismatch for %s: %s" % (path, h.hexdigest()))
    return {"ok": True}


class _Guard(object):
    """An exclusive flock on DIR/lock.guard for the length of a ``with``: every change of the
    lease (take, renew, reclaim, release) is one read-modify-write under it, so two
    coordinators can never both hold the host (a lock directory with a separate owner file let
    a reclaimer see the owner file missing and take a lock just taken)."""

    def __init__(self, d: str) -> None:
        self.path = os.path.join(d, "lock.guard")

    def __enter__(self):
        import fcntl
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # closing releases the flock


def _lease_path(d: str) -> str:
    return os.path.join(d, "lock")


def _read_lease(d: str) -> Optional[dict]:
    """The lease DIR/lock ({"owner", "expires"}), None when there is none. A lock directory
    of an older harness (lock/owner.json) is read too."""
    path = _lease_path(d)
    if os.path.isdir(path):
        path = os.path.join(path, "owner.json")
    try:
        with open(path) as f:
            cur = json.load(f)
        return cur if isinstance(cur, dict) else {"owner": "?", "expires": 0}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"owner": "?", "expires": 0}  # unreadable: expired, reclaimable


def _write_lease(d: str, owner: str, ttl: float) -> None:
    path = _lease_path(d)
    if os.path.isdir(path):  # an older harness's lock directory: replaced by the file
        for n in os.listdir(path):
            os.unlink(os.path.join(path, n))
        os.rmdir(path)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump({"owner": owner, "expires": time.time() + ttl}, f)
    os.replace(tmp, path)


def lock(d: str, owner: str, ttl: float, wait: float) -> dict:
    """Take (or renew, for the same owner) the host's lease DIR/lock for ``ttl`` seconds; an
    expired lease is taken over. Waits up to ``wait`` seconds for another owner's lease, then
    raises HostctlError naming the holder."""
    os.makedirs(d, exist_ok=True)
    deadline = time.time() + wait
    while True:
        with _Guard(d):
            cur = _read_lease(d)
            if cur is None or cur.get("owner") == owner or cur.get("expires", 0) < time.time():
                _write_lease(d, owner, ttl)
                return {"ok": True, "owner": owner,
                        "renewed": bool(cur) and cur.get("owner") == owner}
        if time.time() >= deadline:
            raise HostctlError("host is locked by %s until %s" % (
                cur.get("owner"), time.strftime("%H:%M:%S", time.localtime(
                    cur.get("expires", 0)))))
        time.sleep(0.05)


def renew(d: str, owner: str, ttl: float) -> dict:
    """Extend ``owner``'s lease by ``ttl`` seconds from now; HostctlError naming the holder when
    the lease is another's or gone (a measurement must not run on a host it lost)."""
    with _Guard(d):
        cur = _read_lease(d)
        if cur is None or cur.get("owner") != owner:
            raise HostctlError("the host's lease was lost%s" % (
                " to %s" % cur.get("owner") if cur else ""))
        _write_lease(d, owner, ttl)
    return {"ok": True, "owner": owner}


def unlock(d: str, owner: str) -> dict:
    """Release ``owner``'s lease (nothing when it is another's or gone)."""
    if not os.path.isdir(d):
        return {"ok": True, "held": False}
    with _Guard(d):
        cur = _read_lease(d)
        if cur is None:
            return {"ok": True, "held": False}
        if cur.get("owner") != owner:
            return {"ok": False, "held_by": cur.get("owner")}
        path = _lease_path(d)
        if os.path.isdir(path):
            _write_lease(d, owner, 0)  # turns an old lock directory into a file first
        os.unlink(path)
    return {"ok": True}


def venv(d: str, wheels: List[str]) -> dict:
    """A virtual environment that sees the system's packages (numpy from the OS on boards) with
    the given wheels installed offline; built in a temp dir and renamed when complete.

    Returns {"python": its interpreter, "created": bool}. Raises HostctlError when the venv
    cannot be made or pip fails; nothing is printed and the temp dir is removed.
    """
    py = os.path.join(d, "bin", "python")
    if os.path.exists(os.path.join(d, ".complete")):
        return {"python": py, "created": False}
    tmp = d + ".tmp-%d" % os.getpid()
    try:
        p = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", tmp],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise HostctlError("python -m venv failed: " + (p.stderr or p.stdout)[-400:])
        p = subprocess.run([os.path.join(tmp, "bin", "python"), "-m", "pip", "install", "-q",
                            "--no-index", "--no-deps", "--disable-pip-version-check"] + wheels,
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise HostctlError("pip install failed: " + (p.stderr or p.stdout)[-400:])
        open(os.path.join(tmp, ".complete"), "w").close()
        os.rename(tmp, d)  # venv scripts hold absolute paths: the venv is used only by bin/python
    except OSError as e:
        raise HostctlError("creating %s failed: %s" % (d, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after the rename; a failure's leftovers
    return {"python": py, "created": True}


def main(argv: List[str]) -> int:
    # Our one line goes to the real stdout; whatever engines print goes to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)

    def say(obj) -> None:
        os.write(out_fd, (json.dumps(obj) + "\n").encode())

    verbs = {
        "probe": (0, lambda: probe()),
        "have": (1, lambda a: have(a)),
        "verify": (2, lambda a, b: verify(a, b)),
        "lock": (4, lambda a, b, c, e: lock(a, b, float(c), float(e))),
        "renew": (3, lambda a, b, c: renew(a, b, float(c))),
        "unlock": (2, lambda a, b: unlock(a, b)),
        "venv": (None, lambda a, *ws: venv(a, list(ws))),
    }
    if not argv or argv[0] not in verbs:
        say({"error": "unknown verb %r" % (argv[0],) if argv else "no verb"})
        return 3
    nargs, fn = verbs[argv[0]]
    args = argv[1:]
    if (nargs is not None and len(args) != nargs) or (nargs is None and len(args) < 2):
        say({"error": "%s: wrong number of arguments (%d)" % (argv[0], len(args))})
        return 3
    try:
        say(fn(*args))
    except HostctlError as e:
        say({"error": str(e)})
        return 3
    except Exception as e:  # an unexpected failure still answers with one JSON line
        say({"error": "%s: %s" % (type(e).__name__, e)})
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
