"""Device inventories (devices/*.toml): one [[hosts]] table per board."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config.toml import Table, read_toml
from ..errors import InputError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_SECRET_KEYS = ("password", "passphrase", "secret", "token")
_KEYS = ("name", "host", "port", "user", "identity_file", "known_hosts", "ssh_config_alias",
         "arch", "workdir", "python", "tags", "trust_host_key", "ray_resource")


@dataclass(frozen=True)
class HostSpec:
    name: str
    host: str
    port: int = 22
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None  # default: ~/.ssh/known_hosts
    ssh_config_alias: bool = False  # host is a ~/.ssh/config alias; fabric resolves it
    arch: str | None = None  # expected; a mismatch is reported
    workdir: str = "~/.harness-work"
    python: str = "python3"
    tags: dict = field(default_factory=dict)
    trust_host_key: bool = False  # explicit trust: an unknown key is accepted and saved
    ray_resource: str | None = None  # a Ray custom resource of the node that reaches this host

    @property
    def target(self) -> str:
        u = f"{self.user}@" if self.user else ""
        return f"{u}{self.host}:{self.port}"


_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})")


def validate_host(host: str, where: str, what: str = "host") -> str:
    """``host`` if it is a host name (letters, digits, '.', '-', '_'; not starting with '-')
    or an IPv4/IPv6 address, else InputError. What reaches ssh or its config (a `Match exec`
    line runs commands) is a name, never shell or option syntax."""
    import ipaddress
    text = host.strip("[]") if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(text)
        return host
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(host):
        raise InputError(where, f"{what}: {host!r} is not a host name or address",
                         "a name of letters, digits, '.', '-', '_', or an IP address")
    return host


def validate_name(name, where: str, what: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError(where, f"{what} {name!r} is not a valid name",
                         "letters, digits and -_. (at most 63, not starting with - _ .)")
    return name


def parse_hosts(data: dict, where: str) -> list[HostSpec]:
    """The hosts of an inventory's TOML data; `where` names the source in messages.

    Raises InputError (one line with the key path) on unknown keys, wrong types, duplicate or
    invalid names, and secrets (passwords, tokens) written into the inventory."""
    v = Table(where, data)
    v.keys(("hosts",))
    raw = data.get("hosts")
    if not isinstance(raw, list) or not raw:
        v.fail("hosts", "at least one [[hosts]] table", "nothing")
    out, seen = [], set()
    for i, t in enumerate(raw):
        hv = v.item("hosts", i)
        for k in t if isinstance(t, dict) else ():
            if any(s in k.lower() for s in _SECRET_KEYS):
                raise InputError(where, f"hosts[{i}].{k}: secrets do not belong in an inventory",
                                 "an identity_file or an ssh-agent")
        hv.keys(_KEYS)
        name = validate_name(hv.get("name", str, required=True), where, f"hosts[{i}].name")
        if name in seen:
            raise InputError(where, f"hosts[{i}].name: duplicate host name {name!r}",
                             "unique names")
        seen.add(name)
        tags = t.get("tags", {})
        if not isinstance(tags, dict) or not all(isinstance(x, str) for x in tags.values()):
            hv.fail("tags", "a table of strings", repr(tags))
        port = hv.get("port", int, 22)
        if not 0 < port < 65536:
            hv.fail("port", "a TCP port", repr(port))
        trust = t.get("trust_host_key", False)
        if not isinstance(trust, bool):
            hv.fail("trust_host_key", "true or false", repr(trust))
        out.append(HostSpec(
            name=name, port=port,
            host=validate_host(hv.get("host", str, required=True), where, f"hosts[{i}].host"),
            user=hv.get("user", str), identity_file=hv.get("identity_file", str),
            known_hosts=hv.get("known_hosts", str),
            ssh_config_alias=bool(t.get("ssh_config_alias", False)),
            arch=hv.get("arch", str), workdir=hv.get("workdir", str, "~/.harness-work"),
            python=hv.get("python", str, "python3"), tags=dict(tags), trust_host_key=trust,
            ray_resource=hv.get("ray_resource", str)))
    return out


def load_inventory(path: str | Path) -> list[HostSpec]:
    """The hosts of an inventory file (devices/*.toml); InputError if it is invalid."""
    return parse_hosts(read_toml(path, "inventory"), str(path))


def select(hosts: list[HostSpec], selector: str | None, where: str = "--devices") -> list[HostSpec]:
    """`name1,name2` or `tag:gpu` / `tag:gpu=vulkan`; None selects all."""
    if not selector:
        return hosts
    out = []
    for part in selector.split(","):
        part = part.strip()
        if part.startswith("tag:"):
            k, _, val = part[4:].partition("=")
            match = [h for h in hosts if k in h.tags and (not val or h.tags[k] == val)]
        else:
            match = [h for h in hosts if h.name == part]
        if not match:
            raise InputError(where, f"{part!r} matches no host in the inventory",
                             "a host name or tag:KEY[=VALUE]: " + ", ".join(h.name for h in hosts))
        out += [h for h in match if h not in out]
    return out
