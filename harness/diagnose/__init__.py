"""Per-layer diagnosis: the first layer whose output goes wrong, and a verified per-layer fix.

API: ``diagnose`` and ``profile`` (run.py); CLI: ``register(subparsers)`` in cli.py adds the
``diagnose`` and ``profile`` sub-commands. The device side is harness_agent/layers.py and
harness_agent/diagnose_main.py.
"""

from .run import ORT, Config, Diagnosis, Profile, diagnose, parse_reference, profile

__all__ = ["ORT", "Config", "Diagnosis", "Profile", "diagnose", "parse_reference", "profile"]
