"""`harness devices check`: what each host is and what it can run, one line per host."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..executors.ssh import SshExecutor
from .inventory import HostSpec


@dataclass
class HostCheck:
    name: str
    ok: bool
    info: dict
    error: str = ""

    def line(self) -> str:
        if not self.ok:
            return f"{self.name:<14} FAIL  {self.error}"
        i = self.info
        eng = i.get("engines") or {}
        engines = ", ".join(f"{e} {v['version']}" for e, v in sorted(eng.items())
                            if "version" in v) or "no engines importable"
        devs = sorted({d for v in eng.values() for d in v.get("devices") or []})
        devices = "; ".join(devs) if devs else "none"
        mem = f"{(i.get('mem_total_kb') or 0) / 1048576:.1f} GiB"
        warn = f"  [arch {i['arch_mismatch']}]" if i.get("arch_mismatch") else ""
        return (f"{self.name:<14} ok    {i.get('arch')}  {i.get('os')}  Python "
                f"{i.get('python_version')}  {i.get('cpu_model')} x{i.get('cores')}  {mem}  "
                f"devices: {devices}  engines: {engines}{warn}")


def check_host(spec: HostSpec, trust_new_host_key: bool = False) -> HostCheck:
    ex = SshExecutor(spec, owner="devices-check", trust_new_host_key=trust_new_host_key)
    try:
        info = ex.setup(lock=False)
        return HostCheck(spec.name, True, info)
    except Exception as e:  # every failure becomes the host's line; others go on
        return HostCheck(spec.name, False, {}, str(e).removeprefix(f"{spec.name}: "))
    finally:
        ex.close()


def check_hosts(hosts: list[HostSpec], trust_new_host_key: bool = False) -> list[HostCheck]:
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(hosts)))) as pool:
        return list(pool.map(lambda h: check_host(h, trust_new_host_key), hosts))
