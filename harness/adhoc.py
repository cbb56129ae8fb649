"""One-off suites from command-line flags (`harness run --model ...`), and saving them."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import InputError
from .suite import Suite, parse_suite


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def _ints(flag: str, text: str | None) -> list[int] | None:
    items = _csv(text)
    if items is None:
        return None
    try:
        return [int(t) for t in items]
    except ValueError:
        raise InputError(flag, f"got {text!r}", "comma-separated integers such as 1,2,4") from None


def suite_dict(args) -> dict:
    """The suite (as TOML data) that the flags describe; without --engine, every engine whose
    models are converted from ONNX."""
    from .models.converters import converted_engines
    from .models.registry import model_entry
    engines: dict[str, list[str]] = {}
    for e in _csv(args.engine) or converted_engines():
        name, _, ver = e.partition("==")
        engines.setdefault(name.strip(), []).append(ver.strip() or "installed")
    model = model_entry(args.model, args.shape)
    data: dict = {"name": "adhoc", "engines": engines, "models": [model]}
    for key, val in (("threads", _ints("--threads", args.threads)),
                     ("precisions", _csv(args.precision)), ("backends", _csv(args.backend))):
        if val:
            data[key] = val
    measure = {}
    for key, val in (("min_iterations", args.iterations), ("min_seconds", args.seconds),
                     ("processes", args.processes), ("warmup", args.warmup),
                     ("timeout_s", args.timeout)):
        if val is not None:
            measure[key] = val
    if measure:
        data["measure"] = measure
    return data


def suite_from_flags(args) -> tuple[Suite, dict]:
    data = suite_dict(args)
    return parse_suite(data, "command line", Path.cwd()), data


def save_suite(data: dict, path: str) -> None:
    import tomli_w
    from .store.atomic import atomic_write_bytes
    atomic_write_bytes(Path(path), tomli_w.dumps(data).encode())


_TARGET = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9.:_-]+?|\[[0-9a-fA-F:]+\])"
                     r"(?::(?P<port>\d+))?$")


def target_host(on: str, args):
    """A HostSpec for `--on user@host[:port]` (no inventory needed)."""
    from .fleet.inventory import HostSpec
    m = _TARGET.match(on)
    if not m:
        raise InputError("--on", f"got {on!r}", "local, an inventory host name, or user@host[:port]")
    host = m.group("host").strip("[]")
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{host}-{m.group('port') or 22}")
    return HostSpec(name=name, host=host, port=int(m.group("port") or 22), user=m.group("user"),
                    identity_file=args.identity_file, known_hosts=args.known_hosts,
                    python=args.python or "python3", workdir=args.workdir or "~/.harness-work")


def add_target_flags(p, devices: bool = True) -> None:
    """Where to run: --on, an inventory (and a selection of it), SSH details for user@host."""
    g = p.add_argument_group("where to run (default: this machine)")
    g.add_argument("--on", help="local (default), an inventory host, or user@host[:port]")
    g.add_argument("--inventory", help="devices inventory (TOML)")
    if devices:
        g.add_argument("--devices", help="hosts of the inventory: name1,name2 or tag:KEY[=VALUE]")
    g.add_argument("--identity-file", help="SSH private key (user@host without inventory)")
    g.add_argument("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)")
    g.add_argument("--python", help="Python on the host (default python3)")
    g.add_argument("--workdir", help="work dir on the host (default ~/.harness-work)")
    g.add_argument("--trust-new-host-key", action="store_true",
                   help="accept and record an unknown SSH host key (a changed key stays refused)")


def resolve_hosts(args):
    """None for this machine, else the HostSpecs that --on / --inventory / --devices name."""
    from .fleet.inventory import load_inventory, select
    on = getattr(args, "on", None)
    devices = getattr(args, "devices", None)
    if on and on != "local" and "@" in on:
        return [target_host(on, args)]
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
