"""The two clocks the exporter reads, behind a Protocol so that tests can drive time.

``wall`` is Unix time, for what /metrics shows (last success, expiry); ``monotonic`` is
for durations, deadlines and the grid of poll ticks.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def wall(self) -> float: ...
    def monotonic(self) -> float: ...


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
