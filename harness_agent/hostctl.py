"""Small host-side operations the coordinator runs over SSH (stdlib only, Python 3.9+).

    python -m <agent>.hostctl probe
    python -m <agent>.hostctl have DIR
    python -m <agent>.hostctl verify FILE SHA256
    python -m <agent>.hostctl lock DIR OWNER TTL_S WAIT_S
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
from typing import List

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


def lock(d: str, owner: str, ttl: float, wait: float) -> dict:
    """A lock directory with an owner file; an expired lock is reclaimed.

    mkdir is atomic on every local filesystem, so two coordinators cannot both create it.
    """
    path = os.path.join(d, "lock")
    os.makedirs(d, exist_ok=True)
    deadline = time.time() + wait
    while True:
        try:
            os.mkdir(path)
            with open(os.path.join(path, "owner.json"), "w") as f:
                json.dump({"owner": owner, "expires": time.time() + ttl}, f)
            return {"ok": True, "owner": owner}
        except FileExistsError:
            try:
                with open(os.path.join(path, "owner.json")) as f:
                    cur = json.load(f)
            except (OSError, ValueError):
                cur = {"owner": "?", "expires": 0}
            if cur.get("owner") == owner:
                _write_owner(path, owner, ttl)
                return {"ok": True, "owner": owner, "renewed": True}
            if cur.get("expires", 0) < time.time():
                _reclaim(path)
                continue
            if time.time() >= deadline:
                raise HostctlError("host is locked by %s until %s" % (
                    cur.get("owner"), time.strftime("%H:%M:%S", time.localtime(
                        cur.get("expires", 0)))))
            time.sleep(0.5)


def _write_owner(path: str, owner: str, ttl: float) -> None:
    tmp = os.path.join(path, "owner.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"owner": owner, "expires": time.time() + ttl}, f)
    os.replace(tmp, os.path.join(path, "owner.json"))


def _reclaim(path: str) -> None:
    stale = "%s.stale-%d-%d" % (path, os.getpid(), int(time.time() * 1000))
    try:
        os.rename(path, stale)  # atomic: only one reclaimer wins
    except OSError:
        return
    for n in os.listdir(stale):
        os.unlink(os.path.join(stale, n))
    os.rmdir(stale)


def unlock(d: str, owner: str) -> dict:
    path = os.path.join(d, "lock")
    try:
        with open(os.path.join(path, "owner.json")) as f:
            cur = json.load(f)
    except (OSError, ValueError):
        return {"ok": True, "held": False}
    if cur.get("owner") != owner:
        return {"ok": False, "held_by": cur.get("owner")}
    _reclaim(path)
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
