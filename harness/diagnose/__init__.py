"""Per-layer diagnosis: the first layer whose output goes wrong, and a verified per-layer fix.

API: ``diagnose``, ``profile`` and ``write_profile`` (run.py; profiles.py: FLOPs per layer,
per-type summaries, the kept `_profiles` rows and comparisons), their text reports in text.py
(the commands are harness/cli/diagnose.py and profile.py). The device side is harness_agent/layers.py and
harness_agent/diagnose_main.py.
"""

from .run import (ORT, Config, Diagnosis, Profile, diagnose, parse_reference, profile,
                  write_profile)

__all__ = ["ORT", "Config", "Diagnosis", "Profile", "diagnose", "parse_reference", "profile",
           "write_profile"]
