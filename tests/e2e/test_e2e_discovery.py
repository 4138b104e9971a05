"""End to end: pool discovery and independent targets, with the real exporter process.

One exporter (1 s interval) with two projects against one simulator over real sockets:
``DISCOVERED`` finds its pools through ListPools (refreshed every second), ``STATIC`` lists
its pools and has its own access key. Each test changes the simulator and waits, with a
deadline, until /metrics shows the behaviour it names.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from exporter.simulator import Fault, Simulator
from tests.e2e.test_e2e import Running, pool_counts, running_against
from tests.support.promtext import Samples, series, value

pytestmark = pytest.mark.e2e

DISCOVERED = "d15c0d15c0d15c0d15c0d15c0d15c0d1"
STATIC = "57a7157a7157a7157a7157a7157a7157"
KEYS = {
    DISCOVERED: ("DISCOVERYACCESSKEY00", "discovery-sk"),
    STATIC: ("STATICACCESSKEY00000", "static-sk"),
}
GPU = "modelarts.vm.gpu.t4"


def label_values(samples: Samples, name: str, label: str, **labels: str) -> set[str]:
    return {dict(found)[label] for found in series(samples, name, **labels)}


def pools_of(samples: Samples, project: str = DISCOVERED) -> set[str]:
    return label_values(samples, "modelarts_pool_info", "pool", project_id=project)


def polled_pools(samples: Samples, project: str = DISCOVERED) -> set[str]:
    return label_values(
        samples, "modelarts_poll_success", "target", project_id=project, api="workload_statistics"
    )


def mentioning(samples: Samples, label: str, text: str) -> list[str]:
    """Names of the series with ``label="text"``."""
    return [name for (name, labels) in samples if (label, text) in labels]


def last_success(samples: Samples, project: str, pool: str) -> float | None:
    return value(
        samples,
        "modelarts_poll_last_success_timestamp_seconds",
        project_id=project,
        api="workload_statistics",
        target=pool,
    )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    workdir = tmp_path_factory.mktemp("e2e-discovery")
    simulator = Simulator(access_keys=dict(KEYS.values()))
    simulator.set_pool(DISCOVERED, "pool-gpu", pool_counts(3))
    simulator.set_pool_info(
        DISCOVERED,
        "pool-gpu",
        display_name="Training (GPU)",
        resources={GPU: (4, 8)},
        nodes={"available": {GPU: 3}, "abnormal": {GPU: 1}},
        phase="Abnormal",
    )
    simulator.set_pool(DISCOVERED, "pool-npu", pool_counts(5))
    simulator.set_pool(DISCOVERED, "scratch-test", pool_counts(1))
    simulator.set_pool(STATIC, "pool-static", pool_counts(2))
    simulator.start()
    config = workdir / "config.yaml"
    config.write_text(
        f"""
poll_interval: 1s
stale_after: 3s
jitter: 0
timeout: 1s
retry: {{max_attempts: 1}}
targets:
  - project_id: "{DISCOVERED}"
    region: cn-north-4
    endpoint: {simulator.url}
    discovery:
      exclude: [".*-test"]
      refresh_interval: 1s
    credentials:
      access_key: {{env: AK_D}}
      secret_key: {{env: SK_D}}
  - project_id: "{STATIC}"
    region: cn-north-4
    endpoint: {simulator.url}
    pools: [pool-static]
    credentials:
      access_key: {{env: AK_S}}
      secret_key: {{env: SK_S}}
"""
    )
    (ak_d, sk_d), (ak_s, sk_s) = KEYS[DISCOVERED], KEYS[STATIC]
    env = {**os.environ, "AK_D": ak_d, "SK_D": sk_d, "AK_S": ak_s, "SK_S": sk_s}
    yield from running_against(simulator, config, env)


class TestDiscovery:
    def test_discovered_pools_are_described_and_polled(self, running: Running) -> None:
        """Listed pools get info, phase, node and job series; excluded ones get none."""
        samples = running.until(lambda s: pools_of(s) == {"pool-gpu", "pool-npu"})
        assert polled_pools(samples) == {"pool-gpu", "pool-npu"}
        labels = {"project_id": DISCOVERED, "pool": "pool-gpu"}
        info: dict[str, str] = dict(*series(samples, "modelarts_pool_info", **labels))
        assert info["display_name"] == "Training (GPU)"
        assert (info["pool_type"], info["workspace_id"]) == ("Dedicate", "0")
        assert value(samples, "modelarts_pool_phase", phase="Abnormal", **labels) == 1
        assert value(samples, "modelarts_pool_phase", phase="Running", **labels) == 0
        nodes = {
            dict(found)["state"]: count
            for found, count in series(
                samples, "modelarts_pool_nodes", flavor=GPU, **labels
            ).items()
        }
        assert nodes == {"available": 3, "abnormal": 1, "creating": 0, "deleting": 0}
        assert value(samples, "modelarts_pool_spec_max_nodes", flavor=GPU, **labels) == 8
        running_jobs = value(
            samples, "modelarts_pool_jobs", type="train", status="running", **labels
        )
        assert running_jobs == 3
        assert mentioning(samples, "pool", "scratch-test") == []
        assert mentioning(samples, "target", "scratch-test") == []

    def test_pools_come_and_go_without_a_restart(self, running: Running) -> None:
        """A pool created in ModelArts appears on /metrics, and a deleted one disappears
        with all its series, while the process keeps running."""
        pid = running.process.pid
        running.simulator.set_pool(DISCOVERED, "pool-new", pool_counts(7))
        samples = running.until(
            lambda s: "pool-new" in pools_of(s) and "pool-new" in polled_pools(s)
        )
        assert value(
            samples, "modelarts_pool_jobs", project_id=DISCOVERED, pool="pool-new",
            type="train", status="running",
        ) == 7  # fmt: skip
        running.simulator.remove_pool(DISCOVERED, "pool-new")
        samples = running.until(
            lambda s: "pool-new" not in pools_of(s) and "pool-new" not in polled_pools(s)
        )
        assert mentioning(samples, "pool", "pool-new") == []
        assert mentioning(samples, "target", "pool-new") == []
        assert running.process.pid == pid
        assert running.process.poll() is None


class TestIndependentTargets:
    def test_a_hanging_project_never_delays_another(self, running: Running) -> None:
        """While every request of one project times out, the other project's pools are
        still polled every interval and served."""
        sim = running.simulator
        sim.inject(Fault(path_contains=DISCOVERED, latency=5.0))
        try:
            stamps = set()
            deadline = time.monotonic() + 4.5
            while time.monotonic() < deadline:
                stamps.add(last_success(running.scrape(), STATIC, "pool-static"))
                time.sleep(0.2)
            # In 4.5 s of a 1 s interval: at least 3 fresh polls of the healthy project,
            # although each cycle of the hanging one takes at least its 1 s timeout per probe.
            assert len(stamps - {None}) >= 4
            samples = running.scrape()
            assert value(samples, "modelarts_pool_jobs", project_id=STATIC, pool="pool-static",
                         type="train", status="running") == 2  # fmt: skip
        finally:
            sim.clear_faults()
        running.until(lambda s: value(s, "modelarts_up", project_id=DISCOVERED) == 1)

    def test_a_refused_project_never_blanks_another(self, running: Running) -> None:
        """While one project's key is refused (401), only that project goes down: the other
        stays up, keeps its data and is polled every interval; the refused one is not asked
        in a burst."""
        sim = running.simulator
        sim.clear_requests()
        sim.inject(Fault.unauthorized(path_contains=STATIC))
        try:
            samples = running.until(lambda s: value(s, "modelarts_up", project_id=STATIC) == 0)
            first = last_success(samples, DISCOVERED, "pool-npu")
            time.sleep(3)
            samples = running.scrape()
            assert value(samples, "modelarts_up", project_id=DISCOVERED) == 1
            later = last_success(samples, DISCOVERED, "pool-npu")
            assert first is not None
            assert later is not None
            assert later >= first + 2
            assert "pool-npu" in pools_of(samples)
            refused = [r for r in sim.requests() if STATIC in r.path]
            # One refused request per interval at most (then backoff), never a burst.
            assert 1 <= len(refused) <= 5
        finally:
            sim.clear_faults()
