"""The request budget of one target: a token bucket that slows the whole target on a 429.

Every HTTP attempt to ModelArts, retries included, first awaits ``acquire()`` on its
target's budget. IAM token requests are not counted: they go to another service (IAM),
about once a day.

- **Token bucket.** The bucket holds at most ``burst`` tokens (it starts full) and refills
  continuously at the *effective rate*, which is ``requests_per_second`` unless ModelArts
  throttled us. A request takes one token, or waits until there is one; waiters are served
  first come, first served, one at a time. So in any window of ``T`` seconds a target
  starts at most ``burst + requests_per_second * T`` requests.
- **Multiplicative decrease on 429.** ``throttled(retry_after)`` halves the effective rate
  (never below ``min(0.1, requests_per_second)`` per second), keeps at most one token, and
  pauses the target: no request starts for ``Retry-After`` seconds, or 2 s when the answer
  had none, capped at ``max_pause``. A 429 that arrives while the target is paused (usually
  a request that was already in flight) only extends the pause; it does not halve again.
- **Additive increase.** When the pause ends, the effective rate climbs back in a straight
  line by a tenth of ``requests_per_second`` per second until it is whole again: about 5 s
  after one halving, 10 s from the floor. No token accrues during the pause.

So a burst of 429s costs the target one pause and half its pace for a few seconds, and
every other pool and job type of the target waits out the pause instead of adding to the
overload. The arithmetic is exact (the rate is piecewise linear in time, tokens are its
integral), so tests can check the bounds with a fake clock. ``clock`` is monotonic seconds;
``sleep`` must let that clock advance.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from structlog.typing import FilteringBoundLogger

__all__ = ["DEFAULT_PAUSE", "MIN_RATE", "RECOVERY_PER_SECOND", "RequestBudget"]

#: Pause after a 429 without ``Retry-After`` (Huawei advises 2-5 s: docs/modelarts-api.md).
DEFAULT_PAUSE = 2.0
#: The effective rate never drops below this many requests per second (or the configured
#: rate, when that is lower).
MIN_RATE = 0.1
#: After a pause the rate grows by this fraction of the configured rate per second.
RECOVERY_PER_SECOND = 0.1
#: Token shortfalls smaller than this count as a whole token, so that float rounding after
#: an exact wait never costs a second, near-zero sleep.
_EPSILON = 1e-9

Sleep = Callable[[float], Awaitable[None]]


class RequestBudget:
    """``requests_per_second`` on average, ``burst`` at once; slower for a while after a 429."""

    def __init__(
        self,
        requests_per_second: float,
        burst: int,
        *,
        clock: Callable[[], float],
        sleep: Sleep = asyncio.sleep,
        max_pause: float = 30.0,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        if not requests_per_second > 0 or not math.isfinite(requests_per_second):
            raise ValueError(f"requests_per_second must be > 0, got {requests_per_second!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.requests_per_second = float(requests_per_second)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._max_pause = max_pause
        self._log = log
        self._floor = min(MIN_RATE, self.requests_per_second)
        self._slope = RECOVERY_PER_SECOND * self.requests_per_second
        self._lock = asyncio.Lock()
        now = clock()
        self._tokens = float(burst)
        self._updated = now
        # The effective rate is ``_start_rate`` at ``_resume_at`` (the end of the last pause),
        # then grows by ``_slope`` per second up to the configured rate. Before
        # ``_resume_at`` nothing starts and no token accrues.
        self._start_rate = self.requests_per_second
        self._resume_at = now

    # ------------------------------------------------------------------ public

    @property
    def effective_rate(self) -> float:
        """Requests per second the bucket refills at now (during a pause: after it)."""
        return self._rate_at(max(self._clock(), self._resume_at))

    def paused_for(self) -> float:
        """Seconds until requests may start again (0 when not paused)."""
        return max(0.0, self._resume_at - self._clock())

    async def acquire(self) -> None:
        """Wait for a token and take it. Cancelling the wait takes none."""
        async with self._lock:
            while True:
                now = self._clock()
                self._refill(now)
                if now >= self._resume_at and self._tokens >= 1.0 - _EPSILON:
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return
                start = max(now, self._resume_at)
                await self._sleep(start - now + self._time_to_earn(1.0 - self._tokens, start))

    def throttled(self, retry_after: float | None) -> None:
        """ModelArts answered 429: halve the rate (unless paused) and pause the target."""
        now = self._clock()
        self._refill(now)
        wanted = DEFAULT_PAUSE if retry_after is None else max(0.0, retry_after)
        pause = min(wanted, self._max_pause)
        already_paused = now < self._resume_at
        if not already_paused:
            self._start_rate = max(self._floor, self._rate_at(now) / 2)
        self._resume_at = max(self._resume_at, now + pause)
        self._tokens = min(self._tokens, 1.0)
        if self._log is not None:
            self._log.warning(
                "request_budget_throttled",
                effective_requests_per_second=round(self._start_rate, 3),
                configured_requests_per_second=self.requests_per_second,
                pause_seconds=round(self._resume_at - now, 3),
                retry_after_seconds=retry_after,
                rate_halved=not already_paused,
            )

    # ------------------------------------------------------------------ arithmetic

    @property
    def _full_at(self) -> float:
        """When the rate is whole again."""
        return self._resume_at + (self.requests_per_second - self._start_rate) / self._slope

    def _rate_at(self, t: float) -> float:
        ramp = self._start_rate + self._slope * max(0.0, t - self._resume_at)
        return min(self.requests_per_second, ramp)

    def _earned(self, t0: float, t1: float) -> float:
        """Tokens earned from ``t0`` to ``t1`` (both at or after ``_resume_at``)."""
        earned = 0.0
        ramp_end = min(t1, self._full_at)
        if ramp_end > t0:
            earned += (ramp_end - t0) * (self._rate_at(t0) + self._rate_at(ramp_end)) / 2
        flat_from = max(t0, self._full_at)
        if t1 > flat_from:
            earned += (t1 - flat_from) * self.requests_per_second
        return earned

    def _time_to_earn(self, tokens: float, t0: float) -> float:
        """Seconds from ``t0`` (at or after ``_resume_at``) until ``tokens`` are earned."""
        if tokens <= 0:
            return 0.0
        rate = self._rate_at(t0)
        ramp_seconds = max(0.0, self._full_at - t0)
        ramp_tokens = ramp_seconds * (rate + self.requests_per_second) / 2
        if tokens <= ramp_tokens:
            # rate * x + slope / 2 * x**2 = tokens, solved in a form stable for small slopes.
            return 2 * tokens / (rate + math.sqrt(rate * rate + 2 * self._slope * tokens))
        return ramp_seconds + (tokens - ramp_tokens) / self.requests_per_second

    def _refill(self, now: float) -> None:
        start = max(self._updated, self._resume_at)
        if now > start:
            self._tokens = min(float(self.burst), self._tokens + self._earned(start, now))
        self._updated = max(self._updated, now)
