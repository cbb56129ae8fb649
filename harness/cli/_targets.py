"""Where a command runs: the shared --on / --inventory / --devices / SSH flags, and the hosts
they name."""

from __future__ import annotations

import argparse
import os
import re

from ..errors import InputError

_TARGET = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?"
                     r"(?P<host>[A-Za-z0-9.:_-]+?|\[[0-9a-fA-F:]+\])(?::(?P<port>\d+))?$")

INVENTORY_HELP = "devices inventory (TOML); default: this machine"
DEVICES_HELP = "hosts of the inventory: name1,name2 or tag:KEY[=VALUE] (default: all)"
TRUST_HELP = "accept and record an unknown SSH host key (a changed key stays refused)"


def target_host(on: str, identity_file: str | None = None, known_hosts: str | None = None,
                python: str | None = None, workdir: str | None = None):
    """A HostSpec for `--on user@host[:port]` (no inventory needed); InputError if `on` is
    not of that form."""
    from ..fleet.inventory import HostSpec, validate_host
    m = _TARGET.match(on)
    if not m:
        raise InputError("--on", f"got {on!r}",
                         "local, an inventory host name, or user@host[:port]")
    host = validate_host(m.group("host").strip("[]"), "--on")
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{host}-{m.group('port') or 22}")
    return HostSpec(name=name, host=host, port=int(m.group("port") or 22), user=m.group("user"),
                    identity_file=identity_file, known_hosts=known_hosts,
                    python=python or "python3", workdir=workdir or "~/.harness-work")


def add_target_flags(p: argparse.ArgumentParser, devices: bool = True) -> None:
    """Where to run: --on, an inventory (and a selection of it), SSH details for user@host."""
    g = p.add_argument_group("where to run (default: this machine)")
    g.add_argument("--on", help="local (default), an inventory host, or user@host[:port]")
    g.add_argument("--inventory", help=INVENTORY_HELP)
    if devices:
        g.add_argument("--devices", help=DEVICES_HELP)
    g.add_argument("--identity-file", help="SSH private key (user@host without inventory)")
    g.add_argument("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)")
    g.add_argument("--python", help="Python on the host (default python3)")
    g.add_argument("--workdir", help="work dir on the host (default ~/.harness-work)")
    g.add_argument("--trust-new-host-key", action="store_true", help=TRUST_HELP)


def resolve_hosts(args: argparse.Namespace):
    """None for this machine, else the HostSpecs that --on / --inventory / --devices name.

    Raises InputError for contradicting or incomplete flags (--devices without --inventory,
    an inventory host name without --inventory, ...)."""
    from ..fleet.inventory import load_inventory, select
    on = getattr(args, "on", None)
    devices = getattr(args, "devices", None)
    if on and on != "local" and "@" in on:
        return [target_host(on, args.identity_file, args.known_hosts, args.python, args.workdir)]
    if on and on != "local":
        if not args.inventory:
            raise InputError("--on", f"{on!r} needs --inventory (or user@host[:port])",
                             "local, user@host[:port], or an inventory host name")
        return select(load_inventory(args.inventory), on, "--on")
    if on == "local" and devices:
        raise InputError("--devices", "cannot be combined with --on local")
    if not args.inventory:
        if devices:
            raise InputError("--devices", "needs --inventory", "an inventory file")
        return None
    return select(load_inventory(args.inventory), devices)


def one_host_executor(args: argparse.Namespace):
    """None for this machine; an SshExecutor for the one host --on names (diagnose, profile).
    The caller closes it."""
    hosts = resolve_hosts(args)
    if hosts is None:
        return None
    if len(hosts) != 1:
        raise InputError("--on", f"{args.on!r} selects {len(hosts)} hosts", "exactly one host")
    from ..executors.ssh import SshExecutor, default_owner
    return SshExecutor(hosts[0], default_owner(f"{args.command}-{os.getpid()}"),
                       trust_new_host_key=bool(args.trust_new_host_key))


def add_placement_flags(p) -> None:
    """`--ray-address` and `--placement`: where the host workers run."""
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster to place host workers on (RAY_ADDRESS); implies "
                        "--placement ray")
    p.add_argument("--placement", default="auto", choices=("auto", "threads", "ray"),
                   help="host workers as threads of this process (no Ray start-up) or in Ray "
                        "actors, one per group of hosts (default auto: ray when a cluster is "
                        "named, else threads)")
    p.add_argument("--max-parallel-hosts", type=int, default=None, metavar="N",
                   help="at most N hosts measure at once (default: all; like Ansible's forks)")


def max_parallel_hosts(args) -> int | None:
    """`--max-parallel-hosts` as a count >= 1, or None (every host); InputError otherwise."""
    from ._common import positive_int
    n = getattr(args, "max_parallel_hosts", None)
    return None if n is None else positive_int("--max-parallel-hosts", n)
