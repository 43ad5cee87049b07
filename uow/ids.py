"""Ids of units: 32 hex digits in the layout of a UUID version 7 (RFC 9562).

The first 48 bits are the Unix time in milliseconds, the rest random, so ids made later sort later
and the ids of one run sit close together. A journal keys its units and writes by these ids: a
resume that reads a run's writes then finds them side by side in the tables' B-trees, in a few
pages, instead of scattered over the whole history. (Run ids stay random, `uuid4`: nothing reads runs
in bulk by id, and a random start tells runs apart when a person types the first few characters.)
"""

from __future__ import annotations

import os
import time
from typing import Callable

__all__ = ["new_id"]

_VERSION = 0x7 << 76  # the version field, 4 bits after the 48-bit timestamp
_VARIANT = 0x2 << 62  # the RFC 9562 variant, the 2 top bits of the last 64
_RANDOM_A = (1 << 12) - 1  # the 12 random bits between the version and the variant
_RANDOM_B = (1 << 62) - 1  # the 62 random bits after the variant


def new_id(clock_ns: Callable[[], int] = time.time_ns) -> str:
    """A fresh id: 32 lowercase hex digits, time-ordered to the millisecond (`clock_ns`: Unix time
    in nanoseconds), then 74 random bits."""
    random = int.from_bytes(os.urandom(10), "big")
    value = (clock_ns() // 1_000_000) << 80 | _VERSION | (random >> 62 & _RANDOM_A) << 64 | _VARIANT | random & _RANDOM_B
    return f"{value:032x}"
