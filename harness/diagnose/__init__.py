"""Per-layer diagnosis: the first layer whose output goes wrong, and a verified per-layer fix.

API: ``diagnose`` and ``profile`` (run.py), their text reports in text.py (the commands are
harness/cli/diagnose.py and profile.py). The device side is harness_agent/layers.py and
harness_agent/diagnose_main.py.
"""

from .run import ORT, Config, Diagnosis, Profile, diagnose, parse_reference, profile

__all__ = ["ORT", "Config", "Diagnosis", "Profile", "diagnose", "parse_reference", "profile"]
