"""Small host-side operations the coordinator runs over SSH (stdlib only, Python 3.9+).

    python -m <agent>.hostctl probe
    python -m <agent>.hostctl have DIR
    python -m <agent>.hostctl verify FILE SHA256
    python -m <agent>.hostctl lock DIR OWNER TTL_S WAIT_S
    python -m <agent>.hostctl unlock DIR OWNER
    python -m <agent>.hostctl venv DIR WHEEL [WHEEL...]

Each prints one JSON line on stdout; a failure exits non-zero with a JSON error line.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from typing import List

from .engines import adapter_names, load_adapter


_OUT_FD = None


def _out(obj) -> None:
    os.write(_OUT_FD if _OUT_FD is not None else 1, (json.dumps(obj) + "\n").encode())


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
        raise SystemExit(_fail("sha256 mismatch for %s: %s" % (path, h.hexdigest())))
    return {"ok": True}


def _fail(msg: str) -> int:
    _out({"error": msg})
    return 3


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
                raise SystemExit(_fail("host is locked by %s until %s" % (
                    cur.get("owner"), time.strftime("%H:%M:%S", time.localtime(
                        cur.get("expires", 0))))))
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
    the given wheels installed offline; built in a temp dir and renamed when complete."""
    py = os.path.join(d, "bin", "python")
    if os.path.exists(os.path.join(d, ".complete")):
        return {"python": py, "created": False}
    tmp = d + ".tmp-%d" % os.getpid()
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", tmp], check=True,
                   stdout=subprocess.DEVNULL)
    p = subprocess.run([os.path.join(tmp, "bin", "python"), "-m", "pip", "install", "-q",
                        "--no-index", "--no-deps", "--disable-pip-version-check"] + wheels,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(_fail("pip install failed: " + (p.stderr or p.stdout)[-400:]))
    open(os.path.join(tmp, ".complete"), "w").close()
    os.rename(tmp, d)  # venv scripts hold absolute paths: the venv is used only by bin/python
    return {"python": py, "created": True}


def main(argv: List[str]) -> int:
    global _OUT_FD
    # Our one line goes to the real stdout; whatever engines print goes to stderr.
    _OUT_FD = os.dup(1)
    os.dup2(2, 1)
    if not argv:
        return _fail("no verb")
    verb, args = argv[0], argv[1:]
    try:
        if verb == "probe":
            _out(probe())
        elif verb == "have":
            _out(have(args[0]))
        elif verb == "verify":
            _out(verify(args[0], args[1]))
        elif verb == "lock":
            _out(lock(args[0], args[1], float(args[2]), float(args[3])))
        elif verb == "unlock":
            _out(unlock(args[0], args[1]))
        elif verb == "venv":
            _out(venv(args[0], args[1:]))
        else:
            return _fail("unknown verb %r" % verb)
    except SystemExit as e:
        return int(e.code or 0)
    except Exception as e:
        return _fail("%s: %s" % (type(e).__name__, e))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
