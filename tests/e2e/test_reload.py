"""Configuration reload: the poller swaps its targets without losing the data of the items
that remain, the exporter rebuilds only what changed, and the real process reloads on SIGHUP
and, with ``--web.enable-lifecycle``, on POST /-/reload."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from exporter import app, config
from exporter.clock import SystemClock
from exporter.config import Discovery
from exporter.cycle import TargetPoller
from exporter.discovery import PoolDiscovery
from exporter.errors import ErrorDetail, TransportError
from exporter.models import Api, ConfigStatus, ItemKey, Snapshot
from exporter.reload import Changes
from exporter.selfmetrics import RequestLedger
from exporter.sharding import Shard
from exporter.simulator import Fault, Simulator
from tests.support.processes import ExporterProcess, start_exporter
from tests.support.promtext import Samples, series, value
from tests.unit.test_poller import (
    LOG,
    PROJECT,
    FakeClock,
    FakeSource,
    auth_error,
    by_pool,
    poller_of,
    raises,
    returns,
    stats,
)
from tests.unit.test_poller_discovery import DiscoveringSource, pool

OTHER = "fedcba9876543210fedcba9876543210"
THIRD = "3333333333333333333333333333333a"
AK = "RELOADACCESSKEY00000"
SK = "reload-sentinel-secret-key-0123456789"
#: A literal secret in a config that fails to load: it must never reach the log.
REJECTED_SK = "rejected-config-secret-key-9876543210"
COUNTS = {"train": {"Running": 3, "Pending": 1}}
SUCCESS_TIMESTAMP = "modelarts_exporter_config_last_reload_success_timestamp_seconds"
RELOAD_SUCCESSFUL = "modelarts_exporter_config_last_reload_successful"
LAST_SUCCESS = "modelarts_poll_last_success_timestamp_seconds"
Clock = FakeClock | SystemClock


def target(
    project: str, pools: list[str], source: FakeSource, clock: Clock, ledger: RequestLedger
) -> TargetPoller:
    keys = [ItemKey(project, Api.WORKLOAD_STATISTICS, p) for p in pools]
    return TargetPoller(project, keys, source, 4, clock, ledger, LOG)


def discovering(source: DiscoveringSource, clock: Clock, ledger: RequestLedger) -> TargetPoller:
    """A target of PROJECT that polls the pools ListPools finds, and no others."""
    found = PoolDiscovery(PROJECT, Discovery(), owns=lambda key: True, slack=30)
    return TargetPoller(PROJECT, [], source, 4, clock, ledger, LOG, discovery=found)


async def eventually(check: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def projects(snapshot: Snapshot) -> set[str]:
    """Every project that any series of the snapshot names."""
    found = {i.key.project_id for i in snapshot.items}
    found |= {p for p, _ in snapshot.up} | {p for p, _ in snapshot.cycles}
    return found | {k[0] for k, _ in snapshot.requests} | {k[0] for k, _ in snapshot.errors}


class TestReplaceTargets:
    def test_a_target_given_again_keeps_its_loop_and_a_new_one_polls_at_once(self) -> None:
        """A target given again is not polled again before its next tick; a new target for
        a project polls at once, and the project's cycle count goes on from where it was."""
        clock, ledger = SystemClock(), RequestLedger()
        kept_source = FakeSource({"a": returns(stats(1))})
        old_source = FakeSource({"b": returns(stats(2))})
        new_source = FakeSource({"b": returns(stats(3)), "c": returns(stats(4))})
        kept = target(PROJECT, ["a"], kept_source, clock, ledger)
        poller = poller_of([kept, target(OTHER, ["b"], old_source, clock, ledger)], clock, ledger)

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(poller.run(stop))
            await eventually(poller.ready)
            new = target(OTHER, ["b", "c"], new_source, clock, ledger)
            await poller.replace_targets([kept, new])
            await eventually(lambda: dict(poller.snapshot.cycles)[OTHER].cycles == 2)
            stop.set()
            await asyncio.wait_for(task, 1)

        asyncio.run(scenario())
        assert (kept_source.calls, old_source.calls) == (["a"], ["b"])
        assert sorted(new_source.calls) == ["b", "c"]
        assert dict(poller.snapshot.cycles)[PROJECT].cycles == 1
        assert by_pool(poller.snapshot).keys() == {"a", "b", "c"}

    def test_a_replaced_target_cycle_in_flight_is_cancelled(self) -> None:
        """Replacing a target whose request hangs cancels that request at once."""
        clock, ledger = SystemClock(), RequestLedger()
        hanging = FakeSource({"a": returns(stats(1))}, delay=60)
        poller = poller_of([target(PROJECT, ["a"], hanging, clock, ledger)], clock, ledger)
        fresh = FakeSource({"a": returns(stats(2))})

        async def scenario() -> float:
            stop = asyncio.Event()
            task = asyncio.create_task(poller.run(stop))
            await eventually(lambda: hanging.in_flight == 1)
            started = time.monotonic()
            await poller.replace_targets([target(PROJECT, ["a"], fresh, clock, ledger)])
            took = time.monotonic() - started
            await eventually(lambda: fresh.calls)
            stop.set()
            await asyncio.wait_for(task, 1)
            return took

        assert asyncio.run(scenario()) < 1
        assert hanging.in_flight == 0

    def test_a_rebuilt_target_keeps_the_data_of_the_items_it_still_polls(self) -> None:
        """An item the new target still polls keeps its last good data and last success,
        even when its first poll after the reload fails; an item it dropped leaves."""
        clock, ledger = FakeClock(), RequestLedger()
        source = FakeSource({"a": returns(stats(1)), "b": returns(stats(2))})
        poller = poller_of([target(PROJECT, ["a", "b"], source, clock, ledger)], clock, ledger)
        asyncio.run(poller.run_cycle())
        polled_at = clock.now
        clock.now += 10
        timeout = TransportError(ErrorDetail(message="slow"), "timeout")
        new_source = FakeSource({"a": raises(timeout), "c": returns(stats(3))})
        new = target(PROJECT, ["a", "c"], new_source, clock, ledger)
        asyncio.run(poller.replace_targets([new]))
        items = by_pool(asyncio.run(poller.run_cycle()))
        assert items.keys() == {"a", "c"}
        a = items["a"]
        assert (a.success, a.data, a.last_success) == (False, stats(1), polled_at)

    def test_a_removed_project_takes_its_series_and_counts_along(self) -> None:
        """Items, up, cycle, request and error counts of a project that left are gone from
        the next snapshot; those of the others stay."""
        clock, ledger = FakeClock(), RequestLedger()
        kept = target(PROJECT, ["a"], FakeSource({"a": returns(stats(1))}), clock, ledger)
        failing = FakeSource({"b": raises(TransportError(ErrorDetail(message="x"), "timeout"))})
        removed = target(OTHER, ["b"], failing, clock, ledger)
        ledger.request(OTHER, "workload_statistics", "none")
        poller = poller_of([kept, removed], clock, ledger)
        assert projects(asyncio.run(poller.run_cycle())) == {PROJECT, OTHER}
        asyncio.run(poller.replace_targets([kept]))
        snapshot = asyncio.run(poller.run_cycle())
        assert projects(snapshot) == {PROJECT}
        assert dict(snapshot.cycles)[PROJECT].cycles == 2

    def test_new_settings_show_in_the_next_snapshot(self) -> None:
        """Interval and stale_after given with the targets are those of the next snapshot."""
        clock, ledger = FakeClock(), RequestLedger()
        kept = target(PROJECT, ["a"], FakeSource({"a": returns(stats(1))}), clock, ledger)
        poller = poller_of([kept], clock, ledger)
        asyncio.run(poller.replace_targets([kept], interval=30, stale_after=90, jitter=1))
        snapshot = asyncio.run(poller.run_cycle())
        assert (snapshot.poll_interval_seconds, snapshot.stale_after_seconds) == (30, 90)

    def test_a_rebuilt_discovering_target_keeps_discovered_pools_until_it_lists(self) -> None:
        """Discovered pools keep their data across a rebuild until the new target's first
        ListPools, which then drops those no longer listed."""
        clock, ledger = FakeClock(), RequestLedger()

        poller = poller_of(
            [discovering(DiscoveringSource([pool("a"), pool("b")]), clock, ledger)], clock, ledger
        )
        asyncio.run(poller.run_cycle())
        timeout = TransportError(ErrorDetail(message="slow"), "timeout")
        source = DiscoveringSource([pool("a")])
        source.behaviours["a"] = raises(timeout)
        asyncio.run(poller.replace_targets([discovering(source, clock, ledger)]))
        items = by_pool(asyncio.run(poller.run_cycle()))
        assert items.keys() == {"a", "0"}
        assert items["a"].data == stats(1)

    def test_discovered_pools_keep_their_data_while_the_new_listpools_fails(self) -> None:
        """A rebuilt discovering target whose first ListPools fails keeps the discovered
        pools' data (not polled meanwhile); its first good ListPools decides."""
        clock, ledger = FakeClock(), RequestLedger()

        poller = poller_of(
            [discovering(DiscoveringSource([pool("a"), pool("b")]), clock, ledger)], clock, ledger
        )
        asyncio.run(poller.run_cycle())
        source = DiscoveringSource([pool("a")])
        source.failure = TransportError(ErrorDetail(message="slow"), "timeout")
        asyncio.run(poller.replace_targets([discovering(source, clock, ledger)]))
        items = by_pool(asyncio.run(poller.run_cycle()))
        assert source.calls == ["list_pools"]
        assert items.keys() == {"a", "b", "0"}
        assert items["b"].data == stats(1)
        source.failure = None
        clock.now += 60
        assert by_pool(asyncio.run(poller.run_cycle())).keys() == {"a", "0"}

    def test_ready_stays_ready_when_a_reload_adds_a_target(self) -> None:
        """/readyz does not turn 503 because a reload added a target not yet polled."""
        clock, ledger = FakeClock(), RequestLedger()
        kept = target(PROJECT, ["a"], FakeSource({"a": returns(stats(1))}), clock, ledger)
        poller = poller_of([kept], clock, ledger)
        assert not poller.ready()
        asyncio.run(poller.run_cycle())
        added = target(OTHER, ["b"], FakeSource({"b": returns(stats(1))}), clock, ledger)
        asyncio.run(poller.replace_targets([kept, added]))
        assert poller.ready()

    def test_reloads_are_recorded_in_the_snapshot(self) -> None:
        """The snapshot says whether the last reload worked and when the last good load
        (the initial one included) was; a failed reload keeps that time."""
        clock, ledger = FakeClock(), RequestLedger()
        kept = target(PROJECT, ["a"], FakeSource({"a": returns(stats(1))}), clock, ledger)
        poller = poller_of([kept], clock, ledger)
        started = clock.now
        assert asyncio.run(poller.run_cycle()).config == ConfigStatus(True, started)
        clock.now += 10
        poller.config_reloaded(successful=False)
        assert asyncio.run(poller.run_cycle()).config == ConfigStatus(False, started)
        clock.now += 10
        poller.config_reloaded(successful=True)
        assert asyncio.run(poller.run_cycle()).config == ConfigStatus(True, clock.now)

    def test_a_rebuilt_target_can_wait_out_the_old_ones_refusal_backoff(self) -> None:
        """A target that inherits a refused target's backoff sends nothing until it ends."""
        clock, ledger = FakeClock(), RequestLedger()
        refused = FakeSource({"a": raises(auth_error())})
        old = target(PROJECT, ["a"], refused, clock, ledger)
        poller = poller_of([old], clock, ledger)
        for _ in range(2):
            asyncio.run(poller.run_cycle())
        source = FakeSource({"a": returns(stats(1))})
        new = target(PROJECT, ["a"], source, clock, ledger)
        new.inherit_backoff(old)
        asyncio.run(poller.replace_targets([new]))
        (item,) = asyncio.run(poller.run_cycle()).items
        assert (source.calls, item.error_code) == ([], "skipped_auth_backoff")


def config_of(endpoint: str, pools: dict[str, list[str]], **settings: object) -> config.Config:
    """A config with one target per project, polling ``pools`` at ``endpoint``."""
    targets = [
        {
            "project_id": project,
            "region": "cn-north-4",
            "endpoint": endpoint,
            "pools": names,
            "credentials": {"access_key": AK, "secret_key": SK},
        }
        for project, names in pools.items()
    ]
    return config.parse({"poll_interval": "60s", **settings, "targets": targets}, environ={})


@pytest.fixture
def upstream() -> Iterator[Simulator]:
    simulator = Simulator(access_keys={AK: SK})
    for project in (PROJECT, OTHER, THIRD):
        for name in ("pool-a", "pool-b"):
            simulator.set_pool(project, name, COUNTS)
    with simulator:
        yield simulator


async def polled(exporter: app.Exporter) -> set[tuple[str, str]]:
    """(project, pool) of every item with data after one more cycle."""
    snapshot = await exporter.poller.run_cycle()
    return {(i.key.project_id, i.key.name) for i in snapshot.items if i.data is not None}


class TestApply:
    def test_only_changed_targets_are_rebuilt(self, upstream: Simulator) -> None:
        """A target whose config is unchanged keeps its client; a changed one gets a new
        one and the old one is closed; added and removed ones come and go."""
        before = {PROJECT: ["pool-a"], OTHER: ["pool-a"], THIRD: ["pool-a"]}
        after = {PROJECT: ["pool-a", "pool-b"], OTHER: ["pool-a"]}
        # One connection (so one client) per target, to tell the targets' clients apart.
        exporter = app.build(config_of(upstream.url, before, max_concurrency=1), LOG)
        clients = dict(zip((PROJECT, OTHER, THIRD), exporter.clients, strict=True))

        async def scenario() -> tuple[Changes, set[tuple[str, str]], dict[str, bool]]:
            try:
                assert len(await polled(exporter)) == 3
                changes = await exporter.apply(config_of(upstream.url, after, max_concurrency=1))
                closed = {project: client.is_closed for project, client in clients.items()}
                return changes, await polled(exporter), closed
            finally:
                await exporter.close()

        changes, items, closed = asyncio.run(scenario())
        assert changes == Changes(unchanged=(OTHER,), rebuilt=(PROJECT,), removed=(THIRD,))
        assert items == {(PROJECT, "pool-a"), (PROJECT, "pool-b"), (OTHER, "pool-a")}
        assert closed == {PROJECT: True, OTHER: False, THIRD: True}
        assert clients[OTHER] in exporter.clients

    def test_a_shared_setting_rebuilds_every_target_and_keeps_their_data(
        self, upstream: Simulator
    ) -> None:
        """A new timeout rebuilds every target; their items keep their data even when the
        first poll after the reload fails."""
        pools = {PROJECT: ["pool-a"], OTHER: ["pool-a"]}
        exporter = app.build(config_of(upstream.url, pools), LOG)

        async def scenario() -> tuple[Changes, set[tuple[str, str]]]:
            try:
                await polled(exporter)
                changes = await exporter.apply(config_of(upstream.url, pools, timeout="5s"))
                upstream.inject(Fault(status=503))
                return changes, await polled(exporter)
            finally:
                await exporter.close()

        changes, items = asyncio.run(scenario())
        assert changes == Changes(rebuilt=(PROJECT, OTHER))
        assert items == {(PROJECT, "pool-a"), (OTHER, "pool-a")}
        assert all(r.status == 503 for r in upstream.requests()[2:])

    def test_the_shard_still_applies_after_a_reload(self, upstream: Simulator) -> None:
        """After a reload an exporter still polls only the pools its shard owns."""
        shard = Shard(1, 2)
        names = [f"pool-{i}" for i in range(12)]
        for name in names:
            upstream.set_pool(PROJECT, name, COUNTS)
        exporter = app.build(config_of(upstream.url, {PROJECT: names[:2]}), LOG, shard=shard)

        async def scenario() -> set[tuple[str, str]]:
            try:
                await exporter.apply(config_of(upstream.url, {PROJECT: names}))
                return await polled(exporter)
            finally:
                await exporter.close()

        owned = {n for n in names if shard.owns(ItemKey(PROJECT, Api.WORKLOAD_STATISTICS, n))}
        assert 0 < len(owned) < len(names)
        assert asyncio.run(scenario()) == {(PROJECT, n) for n in owned}


# ---------------------------------------------------------------- the real process

INTERVAL = 1.0


def write_config(
    path: Path, endpoint: str, pools: list[str], project_id: str = PROJECT, other_sk: str = SK
) -> None:
    """Two targets: ``project_id`` polling ``pools``, and OTHER polling pool-a with a
    literal secret key."""
    path.write_text(
        f"""
poll_interval: {INTERVAL}s
jitter: 0
timeout: 2s
retry: {{max_attempts: 1}}
targets:
  - project_id: "{project_id}"
    region: cn-north-4
    endpoint: {endpoint}
    pools: [{", ".join(pools)}]
  - project_id: "{OTHER}"
    region: cn-north-4
    endpoint: {endpoint}
    pools: [pool-a]
    credentials: {{access_key: "{AK}", secret_key: "{other_sk}"}}
"""
    )


def write_invalid_config(path: Path, endpoint: str) -> None:
    """targets[0].project_id is too short; OTHER's secret key is one never accepted."""
    write_config(path, endpoint, ["pool-a", "pool-b"], project_id="short", other_sk=REJECTED_SK)


def last_success(samples: Samples, project: str, name: str) -> float | None:
    labels = {"project_id": project, "api": "workload_statistics", "target": name}
    return value(samples, LAST_SUCCESS, **labels)


def cycles(samples: Samples, project: str) -> float:
    found = value(samples, "modelarts_exporter_poll_cycles_total", project_id=project)
    return found or 0.0


def scrape_until(
    exporter: ExporterProcess, check: Callable[[Samples], bool], timeout: float = 10
) -> Samples:
    """Scrape until ``check`` holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check(samples := exporter.scrape()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return samples


def logged(exporter: ExporterProcess, event: str) -> list[dict[str, object]]:
    return [e for e in exporter.logs() if e.get("event") == event]


class Scraper:
    """Scrapes /metrics in a thread until the ``with`` block ends; keeps every scrape."""

    def __init__(self, exporter: ExporterProcess) -> None:
        self.scrapes: list[Samples] = []
        self._exporter = exporter
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.scrapes.append(self._exporter.scrape())
            time.sleep(0.02)


@pytest.fixture
def start(
    upstream: Simulator, tmp_path: Path
) -> Iterator[Callable[..., tuple[ExporterProcess, Path]]]:
    """Start the real exporter on a config polling pool-a of PROJECT and OTHER."""
    started: list[ExporterProcess] = []

    def start(*flags: str) -> tuple[ExporterProcess, Path]:
        path = tmp_path / "config.yaml"
        write_config(path, upstream.url, ["pool-a"])
        env = {**os.environ, "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
        exporter = start_exporter(path, tmp_path / "exporter.log", env, *flags)
        started.append(exporter)
        exporter.wait_ready()
        return exporter, path

    yield start
    for exporter in started:
        exporter.kill()


@pytest.mark.e2e
class TestSighup:
    def test_a_new_pool_appears_and_no_series_of_the_others_blinks(
        self, start: Callable[..., tuple[ExporterProcess, Path]], upstream: Simulator
    ) -> None:
        """SIGHUP with pool-b added: pool-b appears, the last-success series of the other
        items are in every scrape across the reload, and the unchanged target is kept."""
        exporter, path = start()
        loaded = value(exporter.scrape(), SUCCESS_TIMESTAMP)
        assert loaded is not None
        with Scraper(exporter) as scraper:
            time.sleep(0.3)
            write_config(path, upstream.url, ["pool-a", "pool-b"])
            exporter.process.send_signal(signal.SIGHUP)
            samples = scrape_until(
                exporter, lambda s: last_success(s, PROJECT, "pool-b") is not None
            )
            time.sleep(2 * INTERVAL)
        assert len(scraper.scrapes) > 20
        for scrape in scraper.scrapes:
            assert last_success(scrape, PROJECT, "pool-a") is not None
            assert last_success(scrape, OTHER, "pool-a") is not None
        assert series(samples, "modelarts_pool_jobs", project_id=PROJECT, pool="pool-b")
        assert value(samples, RELOAD_SUCCESSFUL) == 1.0
        assert (value(samples, SUCCESS_TIMESTAMP) or 0) > loaded
        (reloaded,) = logged(exporter, "config_reloaded")
        assert (reloaded["unchanged"], reloaded["rebuilt"], reloaded["added"]) == (1, 1, 0)
        counts = [cycles(s, OTHER) for s in scraper.scrapes]
        assert counts == sorted(counts)

    def test_an_invalid_file_is_rejected_and_the_old_config_keeps_running(
        self, start: Callable[..., tuple[ExporterProcess, Path]], upstream: Simulator
    ) -> None:
        """SIGHUP with a bad file: reload_successful turns 0, the log names the key (never
        a secret), polling goes on as before; a good file then turns it back to 1."""
        exporter, path = start()
        loaded = value(exporter.scrape(), SUCCESS_TIMESTAMP)
        write_invalid_config(path, upstream.url)
        exporter.process.send_signal(signal.SIGHUP)
        failed = scrape_until(exporter, lambda s: value(s, RELOAD_SUCCESSFUL) == 0.0)
        assert value(failed, SUCCESS_TIMESTAMP) == loaded
        (line,) = logged(exporter, "config_reload_failed")
        assert (line["key"], line["level"]) == ("targets[0].project_id", "error")
        assert "targets[0].project_id: must be 32-36 characters" in str(line["error"])
        polled_since = cycles(failed, PROJECT)
        later = scrape_until(exporter, lambda s: cycles(s, PROJECT) >= polled_since + 2)
        assert last_success(later, PROJECT, "pool-a") is not None
        assert last_success(later, PROJECT, "pool-b") is None
        write_config(path, upstream.url, ["pool-a"])
        exporter.process.send_signal(signal.SIGHUP)
        scrape_until(exporter, lambda s: value(s, RELOAD_SUCCESSFUL) == 1.0)
        text = exporter.log_path.read_text()
        assert REJECTED_SK not in text
        assert SK not in text


@pytest.mark.e2e
class TestLifecycleApi:
    def test_post_reload_is_forbidden_without_the_flag(
        self, start: Callable[..., tuple[ExporterProcess, Path]], upstream: Simulator
    ) -> None:
        """Without --web.enable-lifecycle POST /-/reload answers 403 and reloads nothing;
        GET /-/reload answers 405."""
        exporter, path = start()
        write_config(path, upstream.url, ["pool-a", "pool-b"])
        response = httpx.post(f"{exporter.url}/-/reload")
        assert response.status_code == 403
        assert "--web.enable-lifecycle" in response.text
        get = httpx.get(f"{exporter.url}/-/reload")
        assert (get.status_code, get.headers["Allow"]) == (405, "POST")
        time.sleep(2 * INTERVAL)
        assert last_success(exporter.scrape(), PROJECT, "pool-b") is None
        assert not logged(exporter, "config_reloaded")

    def test_post_reload_applies_a_good_file_and_rejects_a_bad_one(
        self, start: Callable[..., tuple[ExporterProcess, Path]], upstream: Simulator
    ) -> None:
        """With the flag, POST /-/reload answers 200 once a good file is in effect, and 400
        with the error naming the key for a bad one, which changes nothing."""
        exporter, path = start("--web.enable-lifecycle")
        write_config(path, upstream.url, ["pool-a", "pool-b"])
        response = httpx.post(f"{exporter.url}/-/reload", timeout=10)
        assert (response.status_code, response.text) == (200, "configuration reloaded\n")
        scrape_until(exporter, lambda s: last_success(s, PROJECT, "pool-b") is not None)
        write_invalid_config(path, upstream.url)
        response = httpx.post(f"{exporter.url}/-/reload", timeout=10)
        assert response.status_code == 400
        assert response.text.startswith("failed to reload config: targets[0].project_id: ")
        samples = exporter.scrape()
        assert value(samples, RELOAD_SUCCESSFUL) == 0.0
        assert last_success(samples, PROJECT, "pool-b") is not None
