"""The poller: isolation, last-good data, staleness, pool removal, credential safety, overlap."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable

import pytest
import structlog

from exporter.clock import Clock, SystemClock
from exporter.cycle import TargetPoller
from exporter.errors import AuthError, ErrorDetail, NotFoundError, TransportError
from exporter.logs import make_logger
from exporter.models import (
    NO_LIMITS,
    Api,
    CallLimits,
    ItemKey,
    ItemState,
    JobTypeStatistics,
    PoolList,
    ResourceSpecs,
    Snapshot,
    WorkloadStatistics,
)
from exporter.poller import Poller, Publish
from exporter.selfmetrics import RequestLedger

PROJECT = "0123456789abcdef0123456789abcdef"
LOG = structlog.wrap_logger(structlog.ReturnLogger())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def stats(running: int) -> WorkloadStatistics:
    return WorkloadStatistics(
        (JobTypeStatistics("train", float(running), (("running", float(running)),)),)
    )


Behaviour = Callable[[], WorkloadStatistics]


class FakeSource:
    """Answers per pool with a callable: return data or raise."""

    def __init__(self, behaviours: dict[str, Behaviour], delay: float = 0.0) -> None:
        self.behaviours = behaviours
        self.calls: list[str] = []
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        #: The limits of each call, by item, in call order.
        self.limits: dict[str, list[CallLimits]] = {}

    async def workload_statistics(
        self, pool: str, limits: CallLimits = NO_LIMITS
    ) -> WorkloadStatistics:
        self.calls.append(pool)
        self.limits.setdefault(pool, []).append(limits)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            return self.behaviours[pool]()
        finally:
            self.in_flight -= 1

    async def resource_specs(self, job_type: str, limits: CallLimits = NO_LIMITS) -> ResourceSpecs:
        self.calls.append(job_type)
        self.limits.setdefault(job_type, []).append(limits)
        return ResourceSpecs(0.0, ())

    async def list_pools(
        self,
        *,
        workspace_id: str | None = None,
        status: str | None = None,
        label_selector: str | None = None,
        limits: CallLimits = NO_LIMITS,
    ) -> PoolList:
        """Only a target with discovery lists pools (``DiscoveringSource`` answers it)."""
        raise AssertionError("a target without discovery never calls ListPools")


class TimedSource(FakeSource):
    """A FakeSource that keeps its calls' deadlines as the client does: a call with less
    time left than its answer takes fails as deadline_exceeded, after the time it had."""

    async def workload_statistics(
        self, pool: str, limits: CallLimits = NO_LIMITS
    ) -> WorkloadStatistics:
        left = limits.time_left
        if left is not None and left < self.delay:
            self.calls.append(pool)
            await asyncio.sleep(max(left, 0.0))
            raise TransportError(ErrorDetail(message="out of time"), "deadline_exceeded")
        return await super().workload_statistics(pool, limits)


def returns(value: WorkloadStatistics) -> Behaviour:
    return lambda: value


def raises(error: Exception) -> Behaviour:
    def behaviour() -> WorkloadStatistics:
        raise error

    return behaviour


def auth_error() -> AuthError:
    return AuthError(ErrorDetail(401, "APIGW.0301", "Incorrect IAM authentication information"))


async def discard(snapshot: Snapshot) -> None:
    """A publish that keeps nothing."""


def poller_of(
    targets: list[TargetPoller],
    clock: Clock,
    ledger: RequestLedger,
    *,
    interval: float = 60.0,
    publish: Publish = discard,
) -> Poller:
    """A poller over ``targets``: stale after 3 intervals, no jitter."""
    return Poller(
        targets,
        interval=interval,
        stale_after=3 * interval,
        jitter=0.0,
        publish=publish,
        clock=clock,
        ledger=ledger,
        log=LOG,
    )


def make_poller(
    source: FakeSource,
    pools: list[str],
    clock: FakeClock | SystemClock,
    *,
    max_concurrency: int = 4,
    interval: float = 60.0,
    published: list[Snapshot] | None = None,
) -> tuple[Poller, RequestLedger]:
    ledger = RequestLedger()
    keys = [ItemKey(PROJECT, Api.WORKLOAD_STATISTICS, p) for p in pools]
    target = TargetPoller(PROJECT, keys, source, max_concurrency, clock, ledger, LOG)
    sink = published if published is not None else []

    async def publish(snapshot: Snapshot) -> None:
        sink.append(snapshot)

    return poller_of([target], clock, ledger, interval=interval, publish=publish), ledger


def by_pool(snapshot: Snapshot) -> dict[str, ItemState]:
    return {item.key.name: item for item in snapshot.items}


def timed_out() -> TransportError:
    return TransportError(ErrorDetail(message="no answer within 10s"), "timeout")


class TestOneItemNeverHoldsUpTheOthers:
    def test_a_probe_is_sent_once_while_others_could_probe(self) -> None:
        """The first probe gets one attempt (its retries could hold up every other item);
        when it fails without proof the next item probes, and the rest keep their retries."""
        source = FakeSource(
            {"a": raises(timed_out()), "b": returns(stats(2)), "c": returns(stats(3))}
        )
        poller, _ = make_poller(source, ["a", "b", "c"], FakeClock())
        items = by_pool(asyncio.run(poller.run_cycle()))
        assert source.calls == ["a", "b", "c"]
        assert [lim.attempts for lim in source.limits["a"]] == [1]
        assert [lim.attempts for lim in source.limits["c"]] == [None]
        assert (items["a"].error_code, items["b"].success, items["c"].success) == (
            "timeout",
            True,
            True,
        )

    def test_a_lone_item_keeps_its_retries(self) -> None:
        """An item that is the only one left to probe keeps the retry policy's attempts."""
        source = FakeSource({"a": returns(stats(1))})
        poller, _ = make_poller(source, ["a"], FakeClock())
        asyncio.run(poller.run_cycle())
        assert [lim.attempts for lim in source.limits["a"]] == [None]

    def test_an_item_that_failed_on_its_own_is_probed_last(self) -> None:
        """An item whose own request failed without proof (timeout, 429, 5xx) goes after
        the others next cycle, and back in its place once it answers again."""
        clock = FakeClock()
        source = FakeSource(
            {"a": raises(timed_out()), "b": returns(stats(2)), "c": returns(stats(3))}
        )
        poller, _ = make_poller(source, ["a", "b", "c"], clock)
        asyncio.run(poller.run_cycle())
        source.calls.clear()
        clock.now += 60
        asyncio.run(poller.run_cycle())
        assert source.calls == ["b", "c", "a"]
        source.behaviours["a"] = returns(stats(1))
        asyncio.run(poller.run_cycle())
        source.calls.clear()
        asyncio.run(poller.run_cycle())
        assert source.calls[0] == "a"

    def test_probes_that_all_fail_do_not_hide_the_healthy_items(self) -> None:
        """Three items at the front time out: this cycle skips the rest (no proof), and the
        next probes a healthy item first, so every healthy item is polled."""
        bad = {p: raises(timed_out()) for p in "abc"}
        source = FakeSource({**bad, "d": returns(stats(4)), "e": returns(stats(5))})
        poller, _ = make_poller(source, list("abcde"), FakeClock())
        first = by_pool(asyncio.run(poller.run_cycle()))
        assert (first["d"].error_code, first["e"].error_code) == ("skipped_unreachable",) * 2
        source.calls.clear()
        second = by_pool(asyncio.run(poller.run_cycle()))
        assert source.calls[0] == "d"
        assert second["d"].success
        assert second["e"].success

    def test_the_last_probe_keeps_its_retries(self) -> None:
        """The third probe is the last one that may be sent: nothing would probe after it,
        so it keeps the retry policy's attempts."""
        source = FakeSource({p: raises(timed_out()) for p in "abcd"})
        poller, _ = make_poller(source, list("abcd"), FakeClock())
        asyncio.run(poller.run_cycle())
        attempts = {p: [lim.attempts for lim in source.limits[p]] for p in source.limits}
        assert attempts == {"a": [1], "b": [1], "c": [None]}

    def test_items_out_of_time_go_first_so_none_starves(self) -> None:
        """Ten pools taking 0.1 s each, one at a time, in a 0.5 s interval: about four fit
        before the deadline. Those cut there go first in the next cycle, so over three
        cycles every pool is polled, rather than the same tail never."""
        source = TimedSource({f"p{i}": returns(stats(i)) for i in range(10)}, delay=0.1)
        pools = [f"p{i}" for i in range(10)]
        poller, ledger = make_poller(source, pools, SystemClock(), max_concurrency=1, interval=0.5)
        cut = (PROJECT, "workload_statistics", "deadline_exceeded")
        answered: list[set[str]] = []

        async def three_cycles() -> list[Snapshot]:
            snapshots = []
            for _ in range(3):
                before = {i.key: i.last_success for i in poller.snapshot.items}
                cuts = ledger.errors[cut]
                snapshots.append(await poller.run_cycle())
                assert ledger.errors[cut] > cuts, "the cycle was expected to run short of time"
                answered.append(
                    {
                        i.key.name
                        for i in poller.snapshot.items
                        if i.success and i.last_success != before.get(i.key)
                    }
                )
            return snapshots

        last = asyncio.run(three_cycles())[-1]
        assert set().union(*answered) == set(pools)
        # A pool cut at the deadline keeps the state of its last poll: its data ages.
        assert all(item.success for item in last.items)

    def test_items_cut_at_the_deadline_are_logged_once_per_cycle(self) -> None:
        """Items cut before any answer are one poll_cycle_deadline line per cycle (how many,
        and the first few), not a poll_failed line each: a project short of time must not
        flood the log; each is still counted as deadline_exceeded."""
        source = TimedSource({f"p{i}": returns(stats(i)) for i in range(10)}, delay=0.1)
        out = io.StringIO()
        ledger = RequestLedger()
        keys = [ItemKey(PROJECT, Api.WORKLOAD_STATISTICS, f"p{i}") for i in range(10)]
        log = make_logger("debug", "json", stream=out)
        target = TargetPoller(PROJECT, keys, source, 1, SystemClock(), ledger, log)
        asyncio.run(poller_of([target], SystemClock(), ledger, interval=0.5).run_cycle())
        lines = [json.loads(raw) for raw in out.getvalue().splitlines()]
        cut = ledger.errors[(PROJECT, "workload_statistics", "deadline_exceeded")]
        (deadline,) = [line for line in lines if line["event"] == "poll_cycle_deadline"]
        assert cut >= 5
        assert (deadline["cut"], deadline["items"], len(deadline["targets"])) == (cut, 10, 5)
        assert [line for line in lines if line["event"] == "poll_failed"] == []

    def test_the_deadline_leaves_the_first_request_its_whole_timeout(self) -> None:
        """With a timeout longer than the interval, the cycle's deadline is the timeout and
        a grace from its start, not 90 % of the interval: an answer within the configured
        timeout is waited for."""
        clock, ledger = FakeClock(), RequestLedger()
        source = FakeSource({"a": returns(stats(1))})
        key = ItemKey(PROJECT, Api.WORKLOAD_STATISTICS, "a")
        target = TargetPoller(PROJECT, [key], source, 1, clock, ledger, LOG, attempt_timeout=5.0)
        asyncio.run(poller_of([target], clock, ledger, interval=1.0).run_cycle())
        assert [lim.time_left for lim in source.limits["a"]] == [pytest.approx(5.25)]

    def test_every_call_has_the_time_left_before_the_cycle_deadline(self) -> None:
        """Each call is given the time left before the cycle's deadline, 90 % of the
        interval from the cycle's start, on the poller's clock."""
        clock = FakeClock()
        source = FakeSource({"a": returns(stats(1)), "b": returns(stats(2))})
        poller, _ = make_poller(source, ["a", "b"], clock, interval=20.0)
        asyncio.run(poller.run_cycle())
        lefts = [lim.time_left for calls in source.limits.values() for lim in calls]
        assert lefts == [pytest.approx(18.0), pytest.approx(18.0)]


class TestPartlyUnreadable:
    def test_unreadable_fields_are_counted_and_logged_and_the_rest_served(self) -> None:
        """An answer with fields that could not be read is served as read (success), and
        counted once as invalid_field, and logged with the fields' JSON paths."""
        problem = "$.specs[0].gpu_num: expected a number, got true"

        class Specs(FakeSource):
            async def resource_specs(
                self, job_type: str, limits: CallLimits = NO_LIMITS
            ) -> ResourceSpecs:
                return ResourceSpecs(2.0, (), problems=(problem,))

        out = io.StringIO()
        ledger = RequestLedger()
        key = ItemKey(PROJECT, Api.RESOURCE_SPECS, "train")
        log = make_logger("debug", "json", stream=out)
        target = TargetPoller(PROJECT, [key], Specs({}), 1, FakeClock(), ledger, log)
        (item,) = asyncio.run(poller_of([target], FakeClock(), ledger).run_cycle()).items
        assert item.success
        assert item.data == ResourceSpecs(2.0, (), problems=(problem,))
        assert ledger.errors[(PROJECT, "resource_specs", "invalid_field")] == 1
        (line,) = [json.loads(raw) for raw in out.getvalue().splitlines() if "unreadable" in raw]
        assert (line["event"], line["problems"], line["target"]) == (
            "response_partly_unreadable",
            [problem],
            "train",
        )


class TestIsolation:
    def test_failing_pool_keeps_its_last_good_data_and_others_update(self) -> None:
        """A pool that fails keeps its previous data and success=0; the others move on."""
        clock = FakeClock()
        source = FakeSource({"a": returns(stats(1)), "b": returns(stats(2))})
        poller, _ = make_poller(source, ["a", "b"], clock)
        asyncio.run(poller.run_cycle())
        clock.now += 60
        source.behaviours = {
            "a": raises(TransportError(ErrorDetail(message="boom"), "timeout")),
            "b": returns(stats(5)),
        }
        snapshot = asyncio.run(poller.run_cycle())
        a, b = snapshot.items
        assert (a.key.name, a.success, a.data, a.error_code) == ("a", False, stats(1), "timeout")
        assert a.last_success == clock.now - 60
        assert (b.success, b.data, b.last_success) == (True, stats(5), clock.now)

    def test_unexpected_exception_costs_one_item_not_the_cycle(self) -> None:
        """A bug (non-PollError exception) marks that item internal_error; the cycle finishes."""
        source = FakeSource({"a": raises(KeyError("bug")), "b": returns(stats(2))})
        poller, ledger = make_poller(source, ["a", "b"], FakeClock())
        snapshot = asyncio.run(poller.run_cycle())
        a, b = snapshot.items
        assert (a.success, a.error_code, b.success) == (False, "internal_error", True)
        assert ledger.errors[(PROJECT, "workload_statistics", "internal_error")] == 1

    def test_pool_not_found_drops_its_data_at_once(self) -> None:
        """404 ModelArts.50015001 removes the pool's data in the same cycle."""
        clock = FakeClock()
        source = FakeSource({"a": returns(stats(1))})
        poller, _ = make_poller(source, ["a"], clock)
        asyncio.run(poller.run_cycle())
        gone = NotFoundError(ErrorDetail(404, "ModelArts.50015001", "Pool a not found."))
        source.behaviours["a"] = raises(gone)
        (item,) = asyncio.run(poller.run_cycle()).items
        assert item.data is None
        assert item.error_code == "ModelArts.50015001"

    def test_other_404_keeps_data(self) -> None:
        """A 404 that is not 'pool not found' (e.g. APIGW.0101) keeps the last good data."""
        source = FakeSource({"a": returns(stats(1))})
        poller, _ = make_poller(source, ["a"], FakeClock())
        asyncio.run(poller.run_cycle())
        source.behaviours["a"] = raises(NotFoundError(ErrorDetail(404, "APIGW.0101", "no api")))
        (item,) = asyncio.run(poller.run_cycle()).items
        assert item.data == stats(1)


class TestStaleness:
    def test_data_is_fresh_until_stale_after_and_not_after(self) -> None:
        """Kept data is shown while younger than stale_after (3 intervals), then hidden."""
        clock = FakeClock()
        source = FakeSource({"a": returns(stats(1))})
        poller, _ = make_poller(source, ["a"], clock, interval=60)
        asyncio.run(poller.run_cycle())
        source.behaviours["a"] = raises(TransportError(ErrorDetail(message="x"), "timeout"))
        clock.now += 120
        snapshot = asyncio.run(poller.run_cycle())
        (item,) = snapshot.items
        assert snapshot.is_fresh(item, clock.now + 59.9)
        assert not snapshot.is_fresh(item, clock.now + 60)
        assert snapshot.expires_at(clock.now) == clock.now + 60
        assert snapshot.expires_at(clock.now + 60) is None


class TestCredentialSafety:
    def test_refused_first_request_stops_the_target_for_the_cycle(self) -> None:
        """After a 401 on the first request no other request of that target is sent."""
        source = FakeSource({p: returns(stats(1)) for p in "abcde"})
        source.behaviours["a"] = raises(auth_error())
        poller, ledger = make_poller(source, list("abcde"), FakeClock())
        snapshot = asyncio.run(poller.run_cycle())
        assert source.calls == ["a"]
        assert [i.error_code for i in snapshot.items] == ["APIGW.0301"] + [
            "skipped_auth_failure"
        ] * 4
        assert ledger.errors[(PROJECT, "workload_statistics", "skipped_auth_failure")] == 4
        assert dict(snapshot.up) == {PROJECT: False}

    def test_next_cycle_tries_again(self) -> None:
        """The refused target is asked again (once) in the next cycle, and recovers."""
        source = FakeSource({p: returns(stats(1)) for p in "abc"})
        source.behaviours["a"] = raises(auth_error())
        poller, _ = make_poller(source, list("abc"), FakeClock())
        asyncio.run(poller.run_cycle())
        source.behaviours["a"] = returns(stats(1))
        snapshot = asyncio.run(poller.run_cycle())
        assert source.calls == ["a", "a", "b", "c"]
        assert all(i.success for i in snapshot.items)

    def test_refusal_during_fan_out_stops_items_not_yet_started(self) -> None:
        """A 403 on a later item stops the items still waiting for a concurrency slot."""
        pools = [f"p{i}" for i in range(10)]
        source = FakeSource({p: returns(stats(1)) for p in pools}, delay=0.01)
        source.behaviours["p1"] = raises(AuthError(ErrorDetail(403, "ModelArts.0203", "forbidden")))
        poller, _ = make_poller(source, pools, FakeClock(), max_concurrency=1)
        snapshot = asyncio.run(poller.run_cycle())
        assert source.calls == ["p0", "p1"]
        codes = [i.error_code for i in snapshot.items]
        assert codes.count("skipped_auth_failure") == 8


class TestConcurrency:
    def test_in_flight_requests_never_exceed_max_concurrency(self) -> None:
        """With 20 pools and max_concurrency 3, at most 3 polls run at once (and 3 do)."""
        pools = [f"p{i}" for i in range(20)]
        source = FakeSource({p: returns(stats(1)) for p in pools}, delay=0.005)
        poller, _ = make_poller(source, pools, FakeClock(), max_concurrency=3)
        asyncio.run(poller.run_cycle())
        assert source.max_in_flight == 3
        assert sorted(source.calls) == sorted(pools)


class TestUp:
    def test_up_when_any_item_reached_modelarts(self) -> None:
        """modelarts_up is 1 when some poll got an answer with accepted credentials."""
        source = FakeSource(
            {
                "a": returns(stats(1)),
                "b": raises(TransportError(ErrorDetail(message="x"), "timeout")),
            }
        )
        poller, _ = make_poller(source, ["a", "b"], FakeClock())
        assert dict(asyncio.run(poller.run_cycle()).up) == {PROJECT: True}

    def test_down_when_nothing_answered(self) -> None:
        """modelarts_up is 0 when every poll failed without an answer."""
        error = TransportError(ErrorDetail(message="refused"), "connect_error")
        source = FakeSource({"a": raises(error)})
        poller, _ = make_poller(source, ["a"], FakeClock())
        assert dict(asyncio.run(poller.run_cycle()).up) == {PROJECT: False}


class TestSchedule:
    def test_publishes_one_snapshot_per_cycle_and_counts_cycles(self) -> None:
        """Every cycle publishes its snapshot; cycle counts increase by one."""
        published: list[Snapshot] = []
        source = FakeSource({"a": returns(stats(1))})
        poller, _ = make_poller(source, ["a"], FakeClock(), published=published)
        asyncio.run(poller.run_cycle())
        asyncio.run(poller.run_cycle())
        assert [dict(s.cycles)[PROJECT].cycles for s in published] == [1, 2]

    def test_overrun_skips_ticks_instead_of_overlapping(self) -> None:
        """A cycle longer than the interval never overlaps the next; missed ticks are counted."""
        source = FakeSource({"a": returns(stats(1))}, delay=0.13)
        published: list[Snapshot] = []
        poller, _ = make_poller(source, ["a"], SystemClock(), interval=0.05, published=published)

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(poller.run(stop))
            while len(published) < 2:
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(task, 1)

        asyncio.run(scenario())
        assert source.max_in_flight == 1
        assert dict(published[1].cycles)[PROJECT].skipped >= 2

    def test_stop_before_first_cycle_polls_nothing(self) -> None:
        """A poller stopped before it starts sends no request."""
        source = FakeSource({"a": returns(stats(1))})
        poller, _ = make_poller(source, ["a"], FakeClock())

        async def scenario() -> None:
            stop = asyncio.Event()
            stop.set()
            await poller.run(stop)

        asyncio.run(scenario())
        assert source.calls == []


def test_error_codes_are_bounded_per_api() -> None:
    """More than 32 distinct error codes per (project, api) are folded into 'other'."""
    ledger = RequestLedger()
    codes = 40
    for i in range(codes):
        ledger.error(PROJECT, Api.WORKLOAD_STATISTICS, f"ModelArts.{i:04d}")
    labels = {code for (_, _, code) in ledger.errors}
    assert len(labels) == 33
    assert ledger.errors[(PROJECT, "workload_statistics", "other")] == codes - 32


class TestProbing:
    def test_probe_falls_through_to_the_next_item_until_one_answers(self) -> None:
        """A probe that gets no answer is followed by another; once one answers, the rest go."""
        source = FakeSource({p: returns(stats(1)) for p in "abcd"})
        source.behaviours["a"] = raises(TransportError(ErrorDetail(message="x"), "timeout"))
        poller, _ = make_poller(source, list("abcd"), FakeClock())
        snapshot = asyncio.run(poller.run_cycle())
        assert source.calls[:2] == ["a", "b"]
        assert sorted(source.calls) == list("abcd")
        assert [i.success for i in snapshot.items] == [False, True, True, True]

    def test_no_blind_fan_out_when_nothing_answers(self) -> None:
        """When 3 probes in a row get no answer, the other items are skipped this cycle."""
        error = TransportError(ErrorDetail(message="no route"), "connect_error")
        source = FakeSource({p: raises(error) for p in "abcdefgh"})
        poller, ledger = make_poller(source, list("abcdefgh"), FakeClock())
        snapshot = asyncio.run(poller.run_cycle())
        assert source.calls == ["a", "b", "c"]
        codes = [i.error_code for i in snapshot.items]
        assert codes == ["connect_error"] * 3 + ["skipped_unreachable"] * 5
        assert ledger.errors[(PROJECT, "workload_statistics", "skipped_unreachable")] == 5


class MovingClock(FakeClock):
    """A clock that moves 10 ms on at every reading, as a real cycle takes time."""

    def monotonic(self) -> float:
        self.now += 0.01
        return self.now


def minutes_asked(
    clock: FakeClock, minutes: int, jitter: tuple[float, ...] = (0.0,)
) -> tuple[list[int], FakeSource, Snapshot]:
    """Poll a refused two-pool target on a one-minute grid of ticks, each cycle starting
    ``jitter[minute % len(jitter)]`` seconds after its tick; the minutes it sent anything."""
    source = FakeSource({p: raises(auth_error()) for p in "ab"})
    poller, _ = make_poller(source, list("ab"), clock)
    asked_at = []
    for minute in range(minutes):
        tick = 1_800_000_000.0 + 60 * minute
        clock.now = tick + jitter[minute % len(jitter)]
        before = len(source.calls)
        snapshot = asyncio.run(poller.run_cycle(tick))
        if len(source.calls) > before:
            asked_at.append(minute)
    return asked_at, source, snapshot


class TestRefusalBackoff:
    @pytest.mark.parametrize("clock", [FakeClock, MovingClock], ids=["still", "moving"])
    def test_repeatedly_refused_target_backs_off_exponentially(
        self, clock: type[FakeClock]
    ) -> None:
        """Refused cycles in a row are followed by 2, 4, 8 intervals of silence (at 60 s a
        key is asked at 0, 1, 3, 7, 15 minutes), never once a minute until it is locked;
        also when the clock moves during a cycle (the wait counts from its start). At
        minute 16, inside the next wait, nothing is asked and the items say why."""
        asked_at, source, snapshot = minutes_asked(clock(), 17)
        assert asked_at == [0, 1, 3, 7, 15]
        assert len(source.calls) == 5
        assert {i.error_code for i in snapshot.items} == {"skipped_auth_backoff"}

    @pytest.mark.parametrize(
        "jitter",
        [(0.0, 48.0, 6.0), (0.0, 6.0, 48.0), (59.0, 0.0)],
        ids=["late-early", "early-late", "max"],
    )
    def test_backoff_counts_ticks_whatever_the_jitter(self, jitter: tuple[float, ...]) -> None:
        """Cycles that start up to a whole interval after their tick (``jitter`` may be as
        large as ``poll_interval``) are still asked at minutes 0, 1, 3, 7, 15: the wait is
        neither cut short by a late refused cycle nor stretched by an early one."""
        assert minutes_asked(FakeClock(), 17, jitter)[0] == [0, 1, 3, 7, 15]

    def test_accepted_credentials_reset_the_backoff(self) -> None:
        """After an accepted answer the next refusal starts the schedule from the beginning."""
        clock = FakeClock()
        source = FakeSource({p: raises(auth_error()) for p in "ab"})
        poller, _ = make_poller(source, list("ab"), clock)
        for minute in (0, 1):
            clock.now = 1_800_000_000.0 + 60 * minute
            asyncio.run(poller.run_cycle())
        clock.now += 120  # minute 3: asked again (after the 2-interval wait) and accepted
        source.behaviours = {p: returns(stats(1)) for p in "ab"}
        assert all(i.success for i in asyncio.run(poller.run_cycle()).items)
        source.behaviours = {p: raises(auth_error()) for p in "ab"}
        calls = len(source.calls)
        for _ in range(2):  # refused twice in a row again: asked both times
            clock.now += 60
            asyncio.run(poller.run_cycle())
        assert len(source.calls) == calls + 2


def refusal_replay(minutes: int, accept_from: int | None = None) -> list[tuple[int, bool, bool]]:
    """The exporter's own refusal backoff, minute by minute: a two-pool target whose key is
    refused (accepted from minute ``accept_from`` on), polled on a one-minute grid.
    Per minute: (minute, whether it sent anything, modelarts_credentials_refused)."""
    clock = FakeClock()
    source = FakeSource({p: raises(auth_error()) for p in "ab"})
    poller, _ = make_poller(source, list("ab"), clock)
    rows = []
    for minute in range(minutes):
        if minute == accept_from:
            source.behaviours = {p: returns(stats(1)) for p in "ab"}
        clock.now = tick = 1_800_000_000.0 + 60 * minute
        before = len(source.calls)
        snapshot = asyncio.run(poller.run_cycle(tick))
        refused = dict(snapshot.credentials_refused)[PROJECT]
        rows.append((minute, len(source.calls) > before, refused))
    return rows


class TestCredentialsRefused:
    def test_refused_stays_set_through_two_hours_of_backoff(self) -> None:
        """A key refused for two hours is asked at minutes 0, 1, 3, 7, 15, then every 15
        minutes; modelarts_credentials_refused is 1 at every minute in between, not only
        when a request was refused."""
        rows = refusal_replay(120)
        asked = [minute for minute, sent, _ in rows if sent]
        assert asked == [0, 1, 3, 7, 15, 30, 45, 60, 75, 90, 105]
        assert all(refused for *_, refused in rows)

    def test_an_accepted_request_clears_it(self) -> None:
        """The first cycle after the key is fixed that ModelArts accepts clears the flag."""
        rows = refusal_replay(122, accept_from=120)
        assert [refused for *_, refused in rows[118:]] == [True, True, False, False]

    def test_a_cycle_without_any_answer_keeps_it(self) -> None:
        """After a refusal, cycles in which nothing answers (timeouts) prove nothing about
        the key: the flag stays until a request is accepted."""
        clock = FakeClock()
        source = FakeSource({"a": raises(auth_error())})
        poller, _ = make_poller(source, ["a"], clock)
        asyncio.run(poller.run_cycle())
        source.behaviours = {"a": raises(TransportError(ErrorDetail(None), "timeout"))}
        clock.now += 60
        snapshot = asyncio.run(poller.run_cycle())
        assert dict(snapshot.credentials_refused) == {PROJECT: True}
        source.behaviours = {"a": returns(stats(1))}
        clock.now += 120
        assert dict(asyncio.run(poller.run_cycle()).credentials_refused) == {PROJECT: False}


class TestPublishFailure:
    def test_a_failing_publish_costs_one_cycle_not_the_loop(self) -> None:
        """If rendering a snapshot raises, the loop logs it and goes on to the next cycle."""
        source = FakeSource({"a": returns(stats(1))})
        attempts: list[int] = []

        async def publish(snapshot: Snapshot) -> None:
            attempts.append(dict(snapshot.cycles)[PROJECT].cycles)
            if len(attempts) == 1:
                raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

        ledger = RequestLedger()
        target = TargetPoller(
            PROJECT,
            [ItemKey(PROJECT, Api.WORKLOAD_STATISTICS, "a")],
            source,
            1,
            SystemClock(),
            ledger,
            LOG,
        )
        poller = poller_of([target], SystemClock(), ledger, interval=0.05, publish=publish)

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(poller.run(stop))
            while len(attempts) < 2:
                assert not task.done(), task
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(task, 1)

        asyncio.run(scenario())
        assert attempts[:2] == [1, 2]
