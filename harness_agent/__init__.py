"""The device-side agent: runs one measurement in a fresh OS process and prints one result line.

Everything under this package must run on the device with only the standard library, numpy
and the engine binding, on Python 3.9+: it is copied as-is to ARM boards. Imports inside it
are relative so it works under any package name it is pushed as.
"""

from .protocol import PROTOCOL, RESULT_MARKER

__all__ = ["PROTOCOL", "RESULT_MARKER"]
