"""harness: a distributed benchmark harness for on-device inference engines (MNN, ncnn).

The library API that the CLI, tests and pandas users call (imported on first use, so that
`import harness` stays cheap):

    load_suite(path) -> Suite                       harness.config.suite
    run_suite(suite, data_dir, ...) -> RunReport    harness.coordinator
    load(data_dir, **filters) -> DataFrame          harness.results
    long_form(df) -> DataFrame                      harness.results
    compare(df_or_dir, dimension, base, head, ...)  harness.compare
    diagnose(model, engine, suspect, ...)           harness.diagnose
    profile(model, engine, config, ...)             harness.diagnose
    write_profile(data_dir, profile) -> Path        harness.diagnose
    publish(data_dir, site_dir, ...) -> counts      harness.publish
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "load_suite": "harness.config.suite",
    "run_suite": "harness.coordinator",
    "load": "harness.results",
    "long_form": "harness.results",
    "compare": "harness.compare",
    "diagnose": "harness.diagnose",
    "profile": "harness.diagnose",
    "write_profile": "harness.diagnose",
    "publish": "harness.publish",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
