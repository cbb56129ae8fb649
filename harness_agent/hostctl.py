"""Small host-side operations the coordinator runs over SSH (stdlib only, Python 3.9+).

    python -m <agent>.hostctl probe
    python -m <agent>.hostctl have DIR
    python -m <agent>.hostctl verify FILE SHA256
    python -m <agent>.hostctl lock DIR OWNER TTL_S WAIT_S [DEAD_OWNER]
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
    """A host-side operation failed; the message is the one-line reason. ``held_by``: the
    lease's owner, when the failure is that another owner holds it."""

    def __init__(self, message: str, held_by: object = None) -> None:
        Exception.__init__(self, message)
        self.held_by = held_by


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


# -- who holds a lease ---------------------------------------------------------------------
# An owner is one coordinator process wherever coordinators run:
# HOSTNAME:PID:LABEL:MACHINE:START:NONCE, where MACHINE is this kernel instance and PID
# namespace (boot id . pid namespace inode: a PID means the same process only there), START the
# process's start time (clock ticks after boot: a reused PID has another) and NONCE random (two
# owners are never equal). HOSTNAME and LABEL (the run id) are for people.


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _stat(pid: int) -> Optional[List[str]]:
    """/proc/PID/stat's fields after the command name (state first), None when gone."""
    raw = _read("/proc/%d/stat" % pid)
    return raw[raw.rfind(")") + 2:].split() if raw else None


def proc_start(pid: int) -> Optional[int]:
    """When process ``pid`` started (clock ticks after boot); None when there is no such live
    process (gone, or a zombie: it runs nothing any more)."""
    f = _stat(pid) if pid > 0 else None
    return int(f[19]) if f and f[0] not in ("Z", "X") else None


def machine_id() -> str:
    """This kernel instance and PID namespace, 'BOOT_ID.PIDNS'; '' where /proc cannot say."""
    boot = (_read("/proc/sys/kernel/random/boot_id") or "").strip()
    try:
        ns = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        ns = ""
    return "%s.%s" % (boot, ns) if boot and ns else ""


def owner_id(label: str) -> str:
    """The lease owner name of this process (see above); ``label``: the run id."""
    import secrets
    import socket
    pid = os.getpid()
    return ":".join([socket.gethostname().replace(":", "-") or "?", str(pid),
                     label.replace(":", "-"), machine_id(), str(proc_start(pid)),
                     secrets.token_hex(4)])


def owner_dead(owner: str) -> bool:
    """True only when ``owner`` is provably dead: a process of this machine (same boot and PID
    namespace) whose PID is gone or now another process (another start time). An owner from
    another machine, one this machine cannot tell about, or an older owner format is not: its
    lease must expire."""
    parts = owner.split(":")
    here = machine_id()
    if len(parts) != 6 or not here or parts[3] != here or not parts[1].isdigit():
        return False
    return str(proc_start(int(parts[1]))) != parts[4]


# -- the processes that measure under a lease ------------------------------------------------
# An agent records its process group in the lease while it runs (``renew(group=...)``), so a
# coordinator leaving (unlock) or one taking over a lease (lock) can kill what measures under
# it. A record names the group's leader and the agent with their start times, so a PID another
# process has since taken is never signalled.


def own_group() -> dict:
    """This process's group record for the lease."""
    pid, pgid = os.getpid(), os.getpgid(0)
    return {"pgid": pgid, "leader_start": proc_start(pgid), "pid": pid,
            "start": proc_start(pid), "machine": machine_id()}


def _group_members(pgid: int) -> List[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = _stat(int(name))
            if f and f[0] not in ("Z", "X") and int(f[2]) == pgid:
                out.append(int(name))
    return out


def _live_target(g: dict) -> Optional[int]:
    """The group to signal for record ``g`` (negative: a single process), None when what it
    names is gone, is not ours (a reused PID) or runs on another machine."""
    try:
        pgid, pid = int(g["pgid"]), int(g["pid"])
    except (KeyError, TypeError, ValueError):
        return None
    if g.get("machine") != machine_id():
        return None
    if g.get("leader_start") is not None and proc_start(pgid) == g["leader_start"]:
        return pgid
    if g.get("start") is not None and proc_start(pid) == g["start"]:
        try:  # the leader is gone but the agent is not: its group, if still the same one
            return pgid if os.getpgid(pid) == pgid else -pid
        except OSError:
            return None
    return None


def kill_groups(groups: List[dict], wait_s: float = 10.0) -> List[dict]:
    """SIGKILL every live group of ``groups`` and wait (up to ``wait_s`` seconds) until no
    process of them runs; the records still running after that (not ours to kill: EPERM)."""
    import signal
    targets = []
    for g in groups:
        t = _live_target(g)
        if t is None:
            continue
        try:
            if t > 0:
                os.killpg(t, signal.SIGKILL)
            else:
                os.kill(-t, signal.SIGKILL)
        except ProcessLookupError:
            continue
        except OSError:
            pass  # still running: reported below
        targets.append((g, t))
    deadline = time.time() + wait_s
    while targets:
        targets = [(g, t) for g, t in targets
                   if (_group_members(t) if t > 0 else proc_start(-t) is not None)]
        if not targets or time.time() >= deadline:
            break
        time.sleep(0.02)
    return [g for g, _ in targets]


# -- the lease ----------------------------------------------------------------------------------


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
    """The lease DIR/lock ({"owner", "expires", "groups"}), None when there is none. A lock
    directory of an older harness (lock/owner.json) is read too."""
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


def _write_lease(d: str, owner: str, expires: float, groups: List[dict]) -> None:
    path = _lease_path(d)
    if os.path.isdir(path):  # an older harness's lock directory: replaced by the file
        for n in os.listdir(path):
            os.unlink(os.path.join(path, n))
        os.rmdir(path)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump({"owner": owner, "expires": expires, "groups": groups}, f)
    os.replace(tmp, path)


def _groups(cur: Optional[dict]) -> List[dict]:
    g = (cur or {}).get("groups")
    return [x for x in g if isinstance(x, dict)] if isinstance(g, list) else []


def _left_running(holder: object, left: List[dict]) -> "HostctlError":
    return HostctlError("host is locked by %s: its measurement (process group %s) is still "
                        "running and cannot be stopped" % (
                            holder, ", ".join(str(g.get("pgid")) for g in left)),
                        held_by=holder)


def lock(d: str, owner: str, ttl: float, wait: float, dead: Optional[str] = None) -> dict:
    """Take (or renew, for the same owner) the host's lease DIR/lock for ``ttl`` seconds; an
    expired lease, or one of ``dead`` (an owner the caller proved dead), is taken over after
    killing what its owner left measuring (``kill_groups``). Waits up to ``wait`` seconds for
    another owner's lease, then raises HostctlError naming the holder (``held_by``), also when
    a previous owner's measurement cannot be stopped."""
    os.makedirs(d, exist_ok=True)
    deadline = time.time() + wait
    while True:
        with _Guard(d):
            cur = _read_lease(d)
            holder = cur.get("owner") if cur else None
            if cur is None or holder == owner or cur.get("expires", 0) < time.time() or (
                    dead is not None and holder == dead):
                killed = 0
                groups = _groups(cur)
                if cur is not None and holder != owner:
                    # a previous owner's agent may still be measuring: nothing of ours starts
                    # beside it (an agent of that owner that starts later finds the lease ours)
                    killed = sum(1 for g in groups if _live_target(g) is not None)
                    left = kill_groups(groups)
                    if left:
                        raise _left_running(holder, left)
                    groups = []
                _write_lease(d, owner, time.time() + ttl, groups)
                return {"ok": True, "owner": owner, "renewed": holder == owner,
                        "groups_killed": killed}
        if time.time() >= deadline:
            raise HostctlError("host is locked by %s until %s" % (
                holder, time.strftime("%H:%M:%S", time.localtime(cur.get("expires", 0)))),
                held_by=holder)
        time.sleep(0.05)


def renew(d: str, owner: str, ttl: float, group: Optional[dict] = None) -> dict:
    """Extend ``owner``'s lease by ``ttl`` seconds from now, recording ``group`` (own_group())
    as measuring under it; HostctlError naming the holder when the lease is another's or gone
    (a measurement must not run on a host it lost)."""
    with _Guard(d):
        cur = _read_lease(d)
        if cur is None or cur.get("owner") != owner:
            raise HostctlError("the host's lease was lost%s" % (
                " to %s" % cur.get("owner") if cur else ""),
                held_by=cur.get("owner") if cur else None)
        groups = [g for g in _groups(cur) if _live_target(g) is not None]
        _write_lease(d, owner, time.time() + ttl, groups + ([group] if group else []))
    return {"ok": True, "owner": owner}


def leave(d: str, owner: str, pid: int) -> dict:
    """Drop the group record of agent ``pid`` from ``owner``'s lease (its measurement ended)."""
    with _Guard(d):
        cur = _read_lease(d)
        if cur is None or cur.get("owner") != owner:
            return {"ok": False}
        _write_lease(d, owner, cur.get("expires", 0),
                     [g for g in _groups(cur) if g.get("pid") != pid])
    return {"ok": True}


def unlock(d: str, owner: str) -> dict:
    """Release ``owner``'s lease (nothing when it is another's or gone), killing first what
    still measures under it (a coordinator leaving on Ctrl-C). A measurement that cannot be
    stopped keeps the lease, expired, so whoever takes it next tries again."""
    if not os.path.isdir(d):
        return {"ok": True, "held": False}
    with _Guard(d):
        cur = _read_lease(d)
        if cur is None:
            return {"ok": True, "held": False}
        if cur.get("owner") != owner:
            return {"ok": False, "held_by": cur.get("owner")}
        groups = _groups(cur)
        killed = sum(1 for g in groups if _live_target(g) is not None)
        left = kill_groups(groups)
        if left:
            _write_lease(d, owner, 0, left)
            return {"ok": False, "left_running": [g.get("pgid") for g in left]}
        path = _lease_path(d)
        if os.path.isdir(path):
            _write_lease(d, owner, 0, [])  # turns an old lock directory into a file first
        os.unlink(path)
    return {"ok": True, "groups_killed": killed}


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


VERBS = {  # verb -> (number of arguments, None: DIR and one or more; lowest count; function)
    "probe": (0, 0, lambda: probe()),
    "have": (1, 1, lambda a: have(a)),
    "verify": (2, 2, lambda a, b: verify(a, b)),
    "lock": (5, 4, lambda a, b, c, e, dead=None: lock(a, b, float(c), float(e), dead)),
    "renew": (3, 3, lambda a, b, c: renew(a, b, float(c))),
    "unlock": (2, 2, lambda a, b: unlock(a, b)),
    "venv": (None, 2, lambda a, *ws: venv(a, list(ws))),
}


def call(verb: str, args: List[str]) -> dict:
    """Run ``verb`` on string ``args`` as the command line would; its answer. Raises
    HostctlError (also for an unknown verb or a wrong number of arguments)."""
    if verb not in VERBS:
        raise HostctlError("unknown verb %r" % (verb,))
    most, least, fn = VERBS[verb]
    if len(args) < least or (most is not None and len(args) > most):
        raise HostctlError("%s: wrong number of arguments (%d)" % (verb, len(args)))
    return fn(*args)


def main(argv: List[str]) -> int:
    # Our one line goes to the real stdout; whatever engines print goes to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)

    def say(obj) -> None:
        os.write(out_fd, (json.dumps(obj) + "\n").encode())

    if not argv:
        say({"error": "no verb"})
        return 3
    try:
        say(call(argv[0], argv[1:]))
    except HostctlError as e:
        say({"error": str(e), "held_by": e.held_by} if e.held_by else {"error": str(e)})
        return 3
    except Exception as e:  # an unexpected failure still answers with one JSON line
        say({"error": "%s: %s" % (type(e).__name__, e)})
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
