"""The request budget: a token bucket per target that slows the whole target on a 429.

``RequestBudget`` runs on a fake clock whose ``sleep`` advances it, so every grant time is
exact; ``ModelArtsClient`` runs over ``httpx.MockTransport`` on the same fake time; the
end-to-end class polls the real simulator over sockets and reads its request log. The bound
checked throughout: in any window of ``T`` seconds at most ``burst + rate * T`` requests
start, where after a 429 the rate is halved, paused and then climbs by a tenth of the
configured rate per second.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import CapturingLogger
from structlog.typing import FilteringBoundLogger

from exporter import app, config
from exporter.budget import DEFAULT_PAUSE, MIN_RATE, RequestBudget
from exporter.client import ModelArtsClient
from exporter.clock import SystemClock
from exporter.config import AkSkCredentials, RetryPolicy, Secret, Target
from exporter.config import parse as parse_config
from exporter.models import Snapshot
from exporter.simulator import Fault, RecordedRequest, Simulator
from tests.support.promtext import parse as samples
from tests.support.promtext import value

FIXTURES = Path(__file__).parent.parent / "fixtures" / "config"
ENV = {"HUAWEICLOUD_SDK_AK": "AK-FROM-ENV-0001", "HUAWEICLOUD_SDK_SK": "sk-from-env-secret"}
PROJECT = "b0d9e7b0d9e7b0d9e7b0d9e7b0d9e7b0"
START = 1000.0
#: Float slack for comparing computed times and counts.
EPS = 1e-9


class FakeTime:
    """A monotonic clock that only ``sleep`` moves."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def budget(time: FakeTime, rate: float, burst: int, **kwargs: Any) -> RequestBudget:
    return RequestBudget(rate, burst, clock=time.clock, sleep=time.sleep, **kwargs)


async def take(bucket: RequestBudget, time: FakeTime, n: int) -> list[float]:
    """Acquire ``n`` tokens one after another; the times they were granted."""
    granted = []
    for _ in range(n):
        await bucket.acquire()
        granted.append(time.now)
    return granted


def most_in_window(times: Sequence[float], window: float) -> int:
    """The most of ``times`` inside any closed interval of length ``window``."""
    ordered = sorted(times)
    return max(
        sum(1 for t in ordered[i:] if t <= start + window + EPS) for i, start in enumerate(ordered)
    )


def ramp_area(seconds: float, rate: float, start_rate: float) -> float:
    """Tokens earned ``seconds`` after a pause: the rate climbs from ``start_rate`` by
    rate/10 per second, capped at ``rate``."""
    slope = rate / 10
    ramp = min(seconds, (rate - start_rate) / slope)
    return ramp * start_rate + slope * ramp**2 / 2 + (seconds - ramp) * rate


def fixture(name: str) -> config.Config:
    return config.load(FIXTURES / name, environ=ENV)


def capturing_logger() -> tuple[FilteringBoundLogger, CapturingLogger]:
    capture = CapturingLogger()
    log = structlog.wrap_logger(
        capture, processors=[], wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG)
    )
    return log, capture


def events(capture: CapturingLogger, name: str) -> list[dict[str, Any]]:
    return [call.kwargs for call in capture.calls if call.kwargs.get("event") == name]


class TestBucket:
    def test_burst_at_once_then_the_rate(self) -> None:
        """The first ``burst`` requests start at once, then one every 1/rate seconds."""
        time = FakeTime()
        granted = asyncio.run(take(budget(time, 20, 5), time, 10))
        expected = [START] * 5 + [START + k / 20 for k in range(1, 6)]
        assert granted == pytest.approx(expected)

    @pytest.mark.parametrize("window", [0.01, 0.1, 0.5, 1.0, 2.5, 10.0])
    def test_rate_never_exceeded_over_any_window(self, window: float) -> None:
        """With idle gaps of random length between requests, no window of T seconds holds
        more than burst + rate * T grants."""
        time, rng = FakeTime(), random.Random(4)
        bucket = budget(time, 7.5, 3)

        async def main() -> list[float]:
            granted = []
            for _ in range(400):
                if rng.random() < 0.1:
                    await time.sleep(rng.uniform(0, 2))
                await bucket.acquire()
                granted.append(time.now)
            return granted

        granted = asyncio.run(main())
        assert most_in_window(granted, window) <= 3 + 7.5 * window + EPS

    def test_idle_bucket_holds_only_burst(self) -> None:
        """After a minute of idleness, exactly ``burst`` requests start at once, not more."""
        time = FakeTime()
        bucket = budget(time, 10, 4)

        async def main() -> list[float]:
            await take(bucket, time, 4)
            await time.sleep(60)
            return await take(bucket, time, 5)

        granted = asyncio.run(main())
        assert granted == pytest.approx([START + 60] * 4 + [START + 60.1])

    def test_rate_below_one_per_second(self) -> None:
        """At 0.5 requests per second with a burst of 1, requests start 2 s apart."""
        time = FakeTime()
        granted = asyncio.run(take(budget(time, 0.5, 1), time, 4))
        assert granted == pytest.approx([START, START + 2, START + 4, START + 6])

    def test_long_run_average_is_the_rate(self) -> None:
        """1000 requests beyond the burst take exactly 1000 / rate seconds."""
        time = FakeTime()
        granted = asyncio.run(take(budget(time, 25, 10), time, 1010))
        assert granted[-1] - granted[0] == pytest.approx(1000 / 25)

    @pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (math.inf, 1), (1, 0)])
    def test_invalid_parameters(self, rate: float, burst: int) -> None:
        """A rate that is not a positive finite number, or a burst below 1, is refused."""
        with pytest.raises(ValueError, match=r"must be"):
            RequestBudget(rate, burst, clock=FakeTime().clock)


class TestThrottled:
    def test_halves_the_rate_and_pauses(self) -> None:
        """After a 429 with Retry-After: 3, nothing starts for 3 s and the rate is halved."""
        time = FakeTime()
        bucket = budget(time, 20, 5)

        async def main() -> list[float]:
            await take(bucket, time, 5)
            bucket.throttled(3.0)
            assert bucket.effective_rate == 10
            assert bucket.paused_for() == 3
            return await take(bucket, time, 2)

        first, second = asyncio.run(main())
        # The bucket was empty: the first token is earned at the halved rate, climbing by
        # 2 per second: 10x + x^2 = 1.
        wait = (-10 + math.sqrt(100 + 4)) / 2
        assert first == pytest.approx(START + 3 + wait)
        assert second - first > 1 / 20 * 1.5

    def test_a_kept_token_starts_at_the_pause_end(self) -> None:
        """The bucket keeps at most one token through a pause; it is used at the pause end."""
        time = FakeTime()
        bucket = budget(time, 20, 5)

        async def main() -> list[float]:
            await take(bucket, time, 1)
            bucket.throttled(1.0)
            return await take(bucket, time, 2)

        first, second = asyncio.run(main())
        assert first == pytest.approx(START + 1)
        assert second > START + 1 + 1 / 20

    def test_no_retry_after_pauses_the_default(self) -> None:
        """A 429 without Retry-After pauses the target for 2 s."""
        time = FakeTime()
        bucket = budget(time, 10, 1)
        bucket.throttled(None)
        assert bucket.paused_for() == DEFAULT_PAUSE == 2.0

    def test_pause_is_capped(self) -> None:
        """A Retry-After beyond ``max_pause`` pauses only ``max_pause``."""
        time = FakeTime()
        bucket = budget(time, 10, 1, max_pause=30.0)
        bucket.throttled(3600.0)
        assert bucket.paused_for() == 30.0

    def test_429s_during_a_pause_extend_it_without_halving_again(self) -> None:
        """Further 429s while paused (requests already in flight) only extend the pause."""
        time = FakeTime()
        bucket = budget(time, 16, 4)

        async def main() -> None:
            bucket.throttled(2.0)
            await time.sleep(1.0)
            bucket.throttled(2.0)
            bucket.throttled(0.5)

        asyncio.run(main())
        assert bucket.effective_rate == 8
        assert bucket.paused_for() == pytest.approx(2.0)

    def test_repeated_429s_stop_at_the_floor(self) -> None:
        """Each 429 outside a pause halves the rate, down to 0.1 per second and no lower."""
        time = FakeTime()
        bucket = budget(time, 20, 5)
        rates = []
        for _ in range(12):
            bucket.throttled(0.0)
            rates.append(bucket.effective_rate)
        assert rates[:3] == [10, 5, 2.5]
        assert rates[-1] == MIN_RATE == 0.1
        slow = budget(time, 0.05, 1)
        slow.throttled(0.0)
        assert slow.effective_rate == 0.05

    def test_recovery_is_gradual_and_reaches_the_configured_rate(self) -> None:
        """From the pause end the rate climbs by rate/10 per second back to the configured
        rate, and stays there."""
        time = FakeTime()
        bucket = budget(time, 20, 5)

        async def rate_after(seconds: float) -> float:
            await time.sleep(seconds - (time.now - START))
            return bucket.effective_rate

        async def main() -> list[float]:
            bucket.throttled(1.0)
            return [await rate_after(s) for s in (0.5, 1.0, 2.0, 3.5, 5.0, 6.0, 7.0, 60.0)]

        assert asyncio.run(main()) == pytest.approx([10, 10, 12, 15, 18, 20, 20, 20])

    def test_requests_follow_the_recovering_rate(self) -> None:
        """Under steady demand after a 429, the gaps between requests shrink step by step to
        1/rate; in every window from the pause end, grants stay within 1 + the ramp's area."""
        time = FakeTime()
        bucket = budget(time, 20, 5)

        async def main() -> list[float]:
            await take(bucket, time, 5)
            bucket.throttled(1.0)
            return await take(bucket, time, 150)

        granted = asyncio.run(main())
        resume = START + 1
        assert granted[0] >= resume
        gaps = [b - a for a, b in itertools.pairwise(granted)]
        assert all(later <= earlier + EPS for earlier, later in itertools.pairwise(gaps))
        assert gaps[0] > 1 / 11
        assert gaps[-1] == pytest.approx(1 / 20)
        for seconds in (0.5, 1.0, 2.0, 5.0):
            started = sum(1 for t in granted if t <= resume + seconds + EPS)
            assert started <= 1 + ramp_area(seconds, 20, 10) + EPS
        # Back at the configured rate 5 s after the pause: 20 per second from then on.
        late = [t for t in granted if t > resume + 5.5]
        assert most_in_window(late, 1.0) == 21

    def test_throttle_is_logged_with_rate_and_pause(self) -> None:
        """A 429 logs request_budget_throttled with the project, new rate and pause."""
        log, capture = capturing_logger()
        time = FakeTime()
        bucket = budget(time, 20, 5, log=log.bind(project_id=PROJECT))
        bucket.throttled(1.5)
        (event,) = events(capture, "request_budget_throttled")
        assert capture.calls[0].method_name == "warning"
        assert event == {
            "event": "request_budget_throttled",
            "project_id": PROJECT,
            "effective_requests_per_second": 10.0,
            "configured_requests_per_second": 20.0,
            "pause_seconds": 1.5,
            "retry_after_seconds": 1.5,
            "rate_halved": True,
        }


class TestConcurrency:
    def test_fifty_concurrent_acquirers(self) -> None:
        """50 tasks acquiring at once are served first come, first served, within the bound,
        each exactly once."""
        time = FakeTime()
        bucket = budget(time, 10, 5)
        granted: dict[int, float] = {}

        async def one(index: int) -> None:
            await bucket.acquire()
            granted[index] = time.now

        async def main() -> None:
            await asyncio.gather(*(one(i) for i in range(50)))

        asyncio.run(main())
        assert sorted(granted) == list(range(50))
        times = [granted[i] for i in range(50)]
        assert times == sorted(times)
        for window in (0.1, 1.0, 2.0):
            assert most_in_window(times, window) <= 5 + 10 * window + EPS
        assert times[-1] - times[0] == pytest.approx(45 / 10)

    def test_a_429_pauses_every_waiting_acquirer(self) -> None:
        """A 429 reported while 40 tasks wait stops them all for the pause, then they go on
        at the halved, recovering rate."""
        time = FakeTime()
        bucket = budget(time, 10, 5)
        granted: list[float] = []
        throttled_at: list[float] = []

        async def one() -> None:
            await bucket.acquire()
            granted.append(time.now)
            if len(granted) == 10:
                bucket.throttled(2.0)
                throttled_at.append(time.now)

        async def main() -> None:
            await asyncio.gather(*(one() for _ in range(50)))

        asyncio.run(main())
        (at,) = throttled_at
        assert not [t for t in granted if at < t < at + 2.0]
        after = [t for t in granted if t >= at + 2.0]
        assert len(after) == 40
        # The bucket kept no token (it was empty): 1 s after the pause at most the ramp.
        assert sum(1 for t in after if t <= at + 3.0 + EPS) <= ramp_area(1.0, 10, 5) + EPS

    def test_cancelled_waiter_takes_no_token(self) -> None:
        """A waiter cancelled while waiting leaves the next token to the next request."""
        time = FakeTime()
        bucket = budget(time, 1, 1)

        async def main() -> float:
            await bucket.acquire()
            waiter = asyncio.create_task(bucket.acquire())
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            await bucket.acquire()
            return time.now

        assert asyncio.run(main()) == pytest.approx(START + 1)


Answer = Callable[[], httpx.Response]


def ok() -> httpx.Response:
    return httpx.Response(200, json={"statistics": {"total": 0, "items": []}})


def unavailable() -> httpx.Response:
    return httpx.Response(503)


def throttled() -> httpx.Response:
    return httpx.Response(429, json={"error_code": "APIGW.0308"}, headers={"Retry-After": "2"})


class NoJitter(random.Random):
    """``uniform(a, b)`` is always ``a``: backoffs are exact."""

    def random(self) -> float:
        return 0.0


class TestClient:
    """``ModelArtsClient`` with a budget, over ``httpx.MockTransport``, on fake time."""

    @staticmethod
    def run(
        answers: Sequence[Answer], calls: int, rate: float, burst: int
    ) -> tuple[list[float], list[BaseException | None]]:
        """Make ``calls`` workload calls one after another; the request times and outcomes."""
        time = FakeTime()
        bucket = budget(time, rate, burst)
        sent: list[float] = []

        def handler(request: httpx.Request) -> httpx.Response:
            sent.append(time.now)
            return answers[min(len(sent), len(answers)) - 1]()

        async def main() -> list[BaseException | None]:
            outcomes: list[BaseException | None] = []
            async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
                client = ModelArtsClient(
                    http,
                    endpoint="https://modelarts.cn-north-4.myhuaweicloud.com",
                    project_id=PROJECT,
                    timeout=5.0,
                    retry=RetryPolicy(max_attempts=3, initial_backoff=0.5, max_backoff=30),
                    max_body_bytes=1 << 20,
                    observe=lambda api, status: None,
                    clock=time.clock,
                    sleep=time.sleep,
                    rng=NoJitter(),
                    budget=bucket,
                )
                for _ in range(calls):
                    try:
                        await client.workload_statistics("pool-a")
                        outcomes.append(None)
                    except Exception as error:  # noqa: BLE001 - recorded for the test
                        outcomes.append(error)
            return outcomes

        return sent, asyncio.run(main())

    def test_retries_consume_tokens(self) -> None:
        """Each retry waits for its own token: at 1 request/s, two 503s and a 200 go out
        1 s apart although the backoff itself is zero."""
        sent, outcomes = self.run([unavailable, unavailable, ok], calls=1, rate=1, burst=1)
        assert outcomes == [None]
        assert sent == pytest.approx([START, START + 1, START + 2])

    def test_429_slows_the_following_requests(self) -> None:
        """After one 429 (Retry-After: 2), the retry waits for the pause and every later call
        goes at the halved rate, which climbs back to the configured 10 per second."""
        sent, outcomes = self.run([throttled, ok], calls=80, rate=10, burst=1)
        assert outcomes == [None] * 80
        assert sent[0] == START
        # The retry: the pause, then one token at 5/s climbing by 1/s (5x + x^2/2 = 1).
        assert sent[1] == pytest.approx(START + 2 + (-5 + math.sqrt(25 + 2)))
        gaps = [b - a for a, b in itertools.pairwise(sent[1:])]
        assert gaps[0] > 1.8 * 0.1
        assert all(gap >= 0.1 - EPS for gap in gaps)
        assert gaps[-1] == pytest.approx(0.1)

    def test_without_429_the_rate_is_steady(self) -> None:
        """The same calls without a 429 go out every 0.1 s from the start."""
        sent, _ = self.run([ok], calls=20, rate=10, burst=1)
        assert sent == pytest.approx([START + k / 10 for k in range(20)])


def demo_target() -> Target:
    creds = AkSkCredentials(Secret("AK", "test"), Secret("SK", "test"))
    return Target(PROJECT, "cn-north-4", "http://x", "http://x", ("p",), (), creds, 4)


class TestConfig:
    def test_defaults(self) -> None:
        """Without the keys, every target gets 50 requests per second and a burst of 50."""
        cfg = fixture("minimal.ok.yaml")
        assert (cfg.requests_per_second, cfg.burst) == (50.0, 50)
        assert (cfg.targets[0].requests_per_second, cfg.targets[0].burst) == (50.0, 50)

    def test_inherited_and_overridden(self) -> None:
        """Targets inherit the top-level rate and burst; each may override either."""
        cfg = fixture("request_budget.ok.yaml")
        budgets = [(t.requests_per_second, t.burst) for t in cfg.targets]
        assert budgets == [(5.0, 3), (50.0, 3), (0.5, 1)]

    @pytest.mark.parametrize(
        ("top", "target", "burst"),
        [(None, None, 50), ("2.5", None, 2), ("0.5", None, 1), ("5", "40", 40), (None, "0.2", 1)],
    )
    def test_unset_burst_follows_the_targets_rate(
        self, top: str | None, target: str | None, burst: int
    ) -> None:
        """Without any burst, a target's burst is its own rate rounded down, at least 1."""
        data: dict[str, Any] = {"targets": [{"project_id": PROJECT, "region": "cn-north-4"}]}
        data["targets"][0]["pools"] = ["pool-a"]
        if top is not None:
            data["requests_per_second"] = float(top)
        if target is not None:
            data["targets"][0]["requests_per_second"] = float(target)
        assert config.parse(data, ENV).targets[0].burst == burst

    def test_target_built_in_code_gets_the_defaults(self) -> None:
        """A Target constructed without the new fields (as ``demo`` does) has the defaults."""
        target = demo_target()
        assert (target.requests_per_second, target.burst) == (50.0, 50)

    def test_check_config_shows_the_budget(self) -> None:
        """The effective config printed by check-config includes the budget per target."""
        plain = config.redacted(fixture("request_budget.ok.yaml"))
        assert (plain["requests_per_second"], plain["burst"]) == (5.0, 3)
        assert plain["targets"][1]["requests_per_second"] == 50.0


# ---------------------------------------------------------------------------- over sockets

AK, SK = "BUDGETACCESSKEY00000", "budget-secret-key"
POOLS = tuple(f"pool-{i:02d}" for i in range(30))
RATE, BURST = 20.0, 5


@dataclass
class Cycle:
    requests: list[RecordedRequest]
    snapshot: Snapshot


@dataclass
class Polled:
    steady: Cycle
    throttled: Cycle
    capture: CapturingLogger


@pytest.fixture(scope="module")
def polled() -> Iterator[Polled]:
    """Cycles over 30 pools against the real simulator: a warm-up, one plain cycle with a
    full bucket, then one whose first request is answered 429 with Retry-After: 1.

    The warm-up takes the first requests' one-off costs (lazy imports, new connections: some
    40 ms) out of the measured time between a token and its arrival at the simulator.
    """
    simulator = Simulator(access_keys={AK: SK})
    for i, pool in enumerate(POOLS):
        simulator.set_pool(PROJECT, pool, {"train": {"Running": i}})
    with simulator:
        cfg = config.parse(
            {
                "requests_per_second": RATE,
                "burst": BURST,
                "max_concurrency": 8,
                "targets": [
                    {
                        "project_id": PROJECT,
                        "region": "cn-north-4",
                        "endpoint": simulator.url,
                        "pools": list(POOLS),
                        "credentials": {"access_key": AK, "secret_key": SK},
                    }
                ],
            },
            environ={},
        )
        log, capture = capturing_logger()
        exporter = app.build(cfg, log, SystemClock())

        async def cycles() -> tuple[Cycle, Cycle]:
            try:
                await exporter.poller.run_cycle()
                await asyncio.sleep(BURST / RATE + 0.1)  # the bucket fills up again
                simulator.clear_requests()
                steady = Cycle([], await exporter.poller.run_cycle())
                steady.requests = simulator.requests()
                simulator.clear_requests()
                simulator.inject(Fault.throttled(retry_after=1, times=1))
                throttled = Cycle([], await exporter.poller.run_cycle())
                throttled.requests = simulator.requests()
                return steady, throttled
            finally:
                await exporter.close()

        steady, throttled = asyncio.run(cycles())
        yield Polled(steady, throttled, capture)


def polled_pools(cycle: Cycle) -> set[str]:
    return {r.path.split("/")[-2] for r in cycle.requests if r.status == 200}


@pytest.mark.e2e
class TestOverSockets:
    """30 pools, 20 requests/s, burst 5, max_concurrency 8, the real simulator."""

    def test_every_pool_is_polled_each_cycle(self, polled: Polled) -> None:
        """Both cycles ask for all 30 pools; the budget delays, never drops. The throttled
        cycle's first probe, answered 429, is not retried while another pool can probe
        (its retry would hold up the others): it fails for this cycle, the 29 others
        succeed."""
        assert polled_pools(polled.steady) == set(POOLS)
        assert all(item.success for item in polled.steady.snapshot.items)
        assert len(polled.steady.requests) == 30
        assert polled_pools(polled.throttled) == set(POOLS) - {POOLS[0]}
        failed = [i.key.name for i in polled.throttled.snapshot.items if not i.success]
        assert failed == [POOLS[0]]
        assert len(polled.throttled.snapshot.items) == 30
        assert [r.status for r in polled.throttled.requests] == [429] + [200] * 29

    def test_no_one_second_window_exceeds_burst_plus_rate(self, polled: Polled) -> None:
        """In every 1 s window of arrivals at the simulator there are at most burst + rate
        = 25 requests.

        The bucket starts at most burst + rate * T requests in any T seconds. A request
        reaches the simulator a little after its token (D, about a millisecond here), so
        arrivals in 1 s are at most burst + rate * (1 + D), which is below 26 while D < 50 ms.
        """
        arrivals = [r.time for r in polled.steady.requests]
        assert most_in_window(arrivals, 1.0) <= BURST + RATE
        # 25 requests beyond the burst cannot start in less than 25 / 20 s.
        assert max(arrivals) - min(arrivals) >= (30 - BURST) / RATE - 0.05

    def test_429_pauses_the_target_for_retry_after(self, polled: Polled) -> None:
        """After the 429 (Retry-After: 1), no request reaches the simulator for 1 s."""
        first, *rest = polled.throttled.requests
        assert first.status == 429
        assert min(r.time for r in rest) >= first.time + 1.0

    def test_after_the_pause_the_rate_is_halved_and_recovers(self, polled: Polled) -> None:
        """In the first second after the pause at most 1 + 11 = 12 requests arrive (one kept
        token, then 10/s climbing by 2/s), against 25 before; the 29 need at least 2.28 s.

        Exact without timing slack: the pause starts after the 429 arrived and nothing else
        was in flight, and a request never arrives before its token.
        """
        first, *rest = polled.throttled.requests
        resume = first.time + 1.0
        in_first_second = [r for r in rest if r.time <= resume + 1.0]
        assert len(in_first_second) <= 1 + ramp_area(1.0, RATE, RATE / 2)
        # 1 + 10x + x^2 >= 29 needs x >= 2.280 s.
        assert max(r.time for r in rest) >= resume + (-10 + math.sqrt(100 + 4 * 28)) / 2

    def test_throttle_is_logged(self, polled: Polled) -> None:
        """The 429 logged request_budget_throttled for the project: 10/s, paused 1 s."""
        (event,) = events(polled.capture, "request_budget_throttled")
        assert event["project_id"] == PROJECT
        assert event["effective_requests_per_second"] == 10.0
        assert event["pause_seconds"] == 1.0
        assert event["retry_after_seconds"] == 1.0


class TestBudgetGauge:
    def test_throttled_target_shows_its_reduced_rate(self) -> None:
        """After a 429, modelarts_request_budget_rate shows the halved rate of that project
        while the other project keeps its configured rate."""
        slow, calm = "a" * 32, "b" * 32
        answered: set[str] = set()

        def handler(request: httpx.Request) -> httpx.Response:
            if slow in request.url.path and slow not in answered:
                answered.add(slow)
                return httpx.Response(429, headers={"Retry-After": "0"}, json={})
            body = {"statistics": {"items": [{"type": "train", "total": 1, "status": {}}]}}
            return httpx.Response(200, json=body)

        target = {"region": "cn-north-4", "pools": ["p"], "requests_per_second": 20}
        cfg = parse_config(
            {"targets": [{**target, "project_id": slow}, {**target, "project_id": calm}]},
            environ={"HUAWEICLOUD_SDK_AK": "AK0000", "HUAWEICLOUD_SDK_SK": "SK0000"},
        )
        exporter = app.build(
            cfg,
            structlog.wrap_logger(structlog.ReturnLogger()),
            transport=httpx.MockTransport(handler),
        )

        async def cycle() -> str:
            try:
                await exporter.poller.run_cycle()
            finally:
                await exporter.close()
            return exporter.cache.current().text.plain.decode()

        exposed = samples(asyncio.run(cycle()))
        slowed = value(exposed, "modelarts_request_budget_rate", project_id=slow)
        assert slowed is not None
        assert 10.0 <= slowed < 20.0  # halved, possibly recovering a little since
        assert value(exposed, "modelarts_request_budget_rate", project_id=calm) == 20.0
