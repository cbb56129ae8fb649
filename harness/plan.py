"""Expansion of a suite into configurations: one measurement process each."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from .cache import sha256_text
from .config.suite import Suite


@dataclass(frozen=True)
class Config:
    model: str
    engine: str
    version: str  # as requested: "installed" or a version string
    backend: str
    precision: str
    threads: int
    process: int
    host: str = "local"
    cores: str = "all"  # the suite's cores value (harness_agent.cores)

    @property
    def series(self) -> str:
        """Identity of the configuration without the process index (what repeats). All cores
        (no pinning) adds nothing, so series from before core pinning keep their ids."""
        parts = [self.host, self.model, self.engine, self.version, self.backend,
                 self.precision, str(self.threads)]
        if self.cores != "all":
            parts.append("cores=" + self.cores)
        return sha256_text(*parts)[:16]

    def as_dict(self) -> dict:
        return asdict(self)


def expand(suite: Suite, hosts: list[str] = ("local",)) -> list[Config]:
    """All configurations, ordered so repeated processes of one configuration are spread out.

    Processes are the outer loop: process 0 of every configuration runs before process 1 of any,
    and engine versions are the inner loop, so slow drift of a host (heat, background load) is
    not absorbed by one configuration or one version.
    """
    base = []
    for m in suite.models:
        engines = m.engines or tuple(suite.engines)
        for host, eng in itertools.product(hosts, engines):
            versions = suite.engines.get(eng, ("installed",))
            # versions vary fastest: two versions of one engine alternate (ABAB...) on a host
            for be, pr, th, co, ver in itertools.product(
                    m.backends or suite.backends, m.precisions or suite.precisions,
                    m.threads or suite.threads, suite.cores, versions):
                base.append((m.name, eng, ver, be, pr, th, host, co))
    out = []
    for p in range(suite.measure.processes):
        for (m, e, v, b, pr, th, h, co) in base:
            out.append(Config(m, e, v, b, pr, th, p, h, co))
    return out
