"""Small helpers shared by the measuring functions."""

from __future__ import annotations

import gc
import os
import time

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

clock = time.perf_counter


def rate(count: int, seconds: float) -> float:
    """Operations per second, refusing a zero or negative interval."""
    if seconds <= 0:
        raise ValueError(f"non-positive interval {seconds!r}")
    return count / seconds


def rss_bytes() -> int:
    """Resident set size of this process, after a full collection."""
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_SIZE
