"""One item's trouble never costs the others, end to end: the real exporter polls four
pools of one project from the simulator over real sockets, with the production ratios
scaled down (2 s interval, stale after 3 intervals, Retry-After = ``retry.max_backoff``
= half the interval). One pool answers 429 for ten intervals, then answers a 503 just
inside the timeout on every attempt for five: in every scrape each other pool is present
and its data is at most two intervals old, no cycle overruns, and the troubled pool is
polled successfully again within an interval of the fault clearing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from exporter.simulator import Fault, Simulator
from tests.support.processes import ExporterProcess, start_exporter
from tests.support.promtext import Samples, value

PROJECT = "15015015015015015015015015015015"
AK, SK = "ISOLATIONACCESSKEY00", "isolation-secret-key"
INTERVAL, TIMEOUT = 2.0, 0.8
HOT, OTHERS = "pool-hot", ("pool-a", "pool-b", "pool-c")
#: Scrapes come every 0.2 s, and the answer of a poll a few ms after its cycle's start.
SLACK = 0.3

pytestmark = pytest.mark.e2e


def config(sim: Simulator) -> str:
    target = {
        "project_id": PROJECT,
        "region": "cn-north-4",
        "endpoint": sim.url,
        "pools": [HOT, *OTHERS],  # the troubled pool first: the worst place for it
    }
    return json.dumps(
        {
            "poll_interval": f"{INTERVAL}s",
            "stale_after": f"{3 * INTERVAL}s",
            "jitter": 0,
            "timeout": f"{TIMEOUT}s",
            "retry": {"max_attempts": 3, "initial_backoff": "100ms", "max_backoff": "1s"},
            "targets": [target],
        }
    )


def success_at(samples: Samples, pool: str) -> float | None:
    return value(
        samples,
        "modelarts_poll_last_success_timestamp_seconds",
        api="workload_statistics",
        target=pool,
    )


def watch_others(exporter: ExporterProcess, seconds: float) -> list[float]:
    """Scrape every 0.2 s for ``seconds``: each other pool must be present every time;
    the age of its data (now less its last success) at each scrape."""
    ages: list[float] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        samples = exporter.scrape()
        now = time.time()
        for pool in OTHERS:
            running = value(
                samples, "modelarts_pool_jobs", pool=pool, type="train", status="running"
            )
            assert running == 1.0, f"{pool} missing from /metrics"
            last = success_at(samples, pool)
            assert last is not None
            ages.append(now - last)
        time.sleep(0.2)
    return ages


def recovery(exporter: ExporterProcess, cleared: float) -> float:
    """Seconds from ``cleared`` until the hot pool's poll succeeds again."""
    while True:
        last = success_at(exporter.scrape(), HOT)
        if last is not None and last > cleared:
            return last - cleared
        assert time.time() - cleared < 4 * INTERVAL, "the hot pool did not recover"
        time.sleep(0.05)


def test_a_troubled_pool_never_costs_the_others(tmp_path: Path) -> None:
    sim = Simulator(access_keys={AK: SK})
    for pool in (HOT, *OTHERS):
        sim.set_pool(PROJECT, pool, {"train": {"Running": 1}})
    path = tmp_path / "config.yaml"
    env = {"PATH": os.environ["PATH"], "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    with sim:
        path.write_text(config(sim))
        exporter = start_exporter(path, tmp_path / "log", env)
        try:
            watch_others(exporter, 2 * INTERVAL)
            throttled = Fault.throttled(1.0, path_contains=f"/{HOT}/")
            sim.inject(throttled)
            ages = watch_others(exporter, 10 * INTERVAL)
            sim.clear_faults()
            throttle_recovery = recovery(exporter, time.time())

            slow = Fault(path_contains=f"/{HOT}/", status=503, latency=TIMEOUT - 0.1)
            sim.inject(slow)
            ages += watch_others(exporter, 5 * INTERVAL)
            sim.clear_faults()
            slow_recovery = recovery(exporter, time.time())
        finally:
            exporter.kill()
        hot = [r for r in sim.requests() if f"/{HOT}/" in r.path]
    events = [e["event"] for e in exporter.logs()]
    assert max(ages) <= 2 * INTERVAL, f"oldest data of another pool: {max(ages):.2f}s"
    assert "poll_cycle_overrun" not in events
    assert throttle_recovery <= INTERVAL + SLACK
    assert slow_recovery <= INTERVAL + SLACK
    assert {r.status for r in hot} >= {429, 503, 200}
