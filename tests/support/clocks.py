"""A settable clock for the tests: a callable giving Unix time, moved by hand."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """Stands still at ``now`` until set or advanced."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
