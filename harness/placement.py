"""Where host workers run: threads in this process, or Ray actors that each own a group of hosts.

A host worker owns one host's executor (so its one SSH connection) and runs that host's calls
one at a time. Both placements run the same `HostGroup`: a thread per host inside one process.
They differ only in which process that is:

- `ThreadPlacement`: the coordinator's own process. No Ray start-up (about 5 s for a private
  instance on 2 cores) and no worker process (about 100 MiB each): the default without a Ray
  cluster.
- `RayPlacement`: one Ray actor per group of up to `group_size` hosts that share a route (their
  inventory `ray_resource`), placed on a node that offers the route, so a cluster spreads the
  groups over its nodes. Each host also holds the resource `harness-host:NAME`, so a second
  coordinator on the same cluster cannot take the host while this one holds it.

The coordinator keeps at most one call per host in flight, so a host that hangs holds only its
own thread and never the rest of its group.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from typing import Callable

# Hosts per Ray actor. Each host costs its actor two threads (its worker and paramiko's
# transport) and one SSH connection; 64 keeps one actor well under a thousand threads while a
# fleet of 200 needs 4 processes rather than 200.
GROUP_SIZE = 64

PLACEMENTS = ("auto", "threads", "ray")

# Hosts of one group that connect, lease, probe and receive the agent at once. Setting up a
# fleet all at once is a connection storm (a bastion's sshd drops connections past its
# MaxStartups, 10 by default) and, on hosts that share a machine, a CPU storm: 200 loopback
# hosts set up together here timed out (178 of 200 first commands over 60 s on 2 cores).
# Measurements are not limited: each host runs one at a time anyway. Ansible's `forks`
# default of 5 is the same idea, for a tool whose every step is a connection.
SETUP_CONCURRENCY = 16


class HostGroup:
    """The executors of a group of hosts; every call names its host. Executors are built
    lazily in `setup`, in the thread (and process) that will use them."""

    def __init__(self, factories: dict[str, Callable],
                 setup_concurrency: int = SETUP_CONCURRENCY):
        self.factories = dict(factories)
        self.executors: dict = {}
        self.locks = {h: threading.Lock() for h in self.factories}
        self.setup_slots = threading.BoundedSemaphore(max(1, setup_concurrency))

    def setup(self, host: str) -> dict:
        """Connect, lock and probe `host`: its probe dict, or {"error": message}. At most
        `setup_concurrency` hosts of the group are set up at once (SETUP_CONCURRENCY)."""
        with self.setup_slots, self.locks[host]:
            try:
                self.executors[host] = self.factories[host]()
                return self.executors[host].setup()
            except Exception as e:
                return {"error": str(e)}

    def measure(self, host: str, job: dict, timeout_s: float) -> dict:
        """One measurement on `host` (see Executor.measure)."""
        with self.locks[host]:
            if host not in self.executors:  # setup itself failed before an executor existed
                self.executors[host] = self.factories[host]()
            return self.executors[host].measure(job, timeout_s)

    def finish(self, host: str) -> list[dict]:
        """Close `host`'s executor; the transfers it made."""
        with self.locks[host]:
            ex = self.executors.pop(host, None)
            if ex is None:
                return []
            ex.close()
            return list(ex.transfers)


class ThreadPlacement:
    """Host workers as threads of this process: each call runs in a daemon thread of its own
    (at most one per host at a time), so a call that never returns cannot keep the
    coordinator from exiting; what it left on the host is the lease's to clean up."""

    kind = "threads"

    def __init__(self, factories: dict[str, Callable], routes: dict[str, str | None]):
        self.group = HostGroup(factories)
        self.no_route: dict[str, str] = {}
        self.workers = 0  # worker processes besides this one

    def call(self, host: str, method: str, *args) -> cf.Future:
        future: cf.Future = cf.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(getattr(self.group, method)(host, *args))
            except BaseException as e:  # delivered to the caller through the future
                future.set_exception(e)

        threading.Thread(target=run, name=f"harness-host-{host}", daemon=True).start()
        return future

    def lost(self, exc: BaseException) -> bool:
        return False

    def close(self) -> None:
        pass


class RayPlacement:
    """Host workers in Ray actors, one per group of hosts sharing a route (see module doc).
    A host whose route no node offers is in `no_route` with the reason."""

    kind = "ray"

    def __init__(self, ray, factories: dict[str, Callable], routes: dict[str, str | None],
                 group_size: int = GROUP_SIZE):
        self.ray = ray
        have = ray.cluster_resources()
        self.no_route = {h: (f"{h}: no Ray node offers the resource {r!r} through which this "
                             "host is reached")
                         for h, r in routes.items() if r and r not in have}
        by_route: dict = {}
        for h in factories:
            if h not in self.no_route:
                by_route.setdefault(routes.get(h), []).append(h)
        actor_cls = ray.remote(num_cpus=0)(HostGroup)
        self.actor_of: dict = {}
        for route, names in by_route.items():
            for i in range(0, len(names), group_size):
                group = names[i:i + group_size]
                res = {f"harness-host:{h}": 1.0 for h in group if f"harness-host:{h}" in have}
                if route:
                    res[route] = 0.001
                # one thread per host for its calls, plus one so `finish` never waits behind
                # a hung host's call
                opts = {"max_concurrency": len(group) + 1, "resources": res or None}
                if not route:  # any node reaches these: spread the groups over the nodes
                    opts["scheduling_strategy"] = "SPREAD"
                actor = actor_cls.options(**opts).remote({h: factories[h] for h in group})
                self.actor_of.update({h: actor for h in group})
        self.workers = len(set(map(id, self.actor_of.values())))

    def call(self, host: str, method: str, *args) -> cf.Future:
        return getattr(self.actor_of[host], method).remote(host, *args).future()

    def lost(self, exc: BaseException) -> bool:
        """Whether `exc` says the worker itself is gone (its node or process died): the host
        was not reached, whatever it was doing."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
        return isinstance(exc, (ActorDiedError, ActorUnavailableError, RayActorError))

    def close(self, wait_s: float = 5.0) -> None:
        """Kill the actors and wait, up to ``wait_s`` s, until Ray reports them dead, so none
        takes a lease after the coordinator released it; best effort (Ray may be gone)."""
        actors = list({id(a): a for a in self.actor_of.values()}.values())
        self.actor_of = {}
        if not actors or not self.ray.is_initialized():
            return
        for actor in actors:
            try:
                self.ray.kill(actor)
            except Exception:  # already gone with its node, or Ray is going down
                pass
        end = time.monotonic() + wait_s
        for actor in actors:
            try:  # fails (RayActorError) as soon as the worker is known dead
                self.ray.get(actor.__ray_ready__.remote(),
                             timeout=max(0.1, end - time.monotonic()))
            except Exception:
                pass
