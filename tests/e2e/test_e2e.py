"""End to end: the real ``modelarts-exporter`` process polls the simulator over real sockets.

One exporter process (1 s interval) lives through a sequence of simulator states; each test
states one behaviour and waits, with a deadline, until /metrics shows it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from exporter.simulator import STATUS_KEYS, Fault, Simulator, default_specs
from tests.support.processes import ExporterProcess, start_exporter
from tests.support.promtext import Samples, series, value

pytestmark = pytest.mark.e2e

PROJECT = "e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0"
AK = "E2EACCESSKEY00000000"
SK = "e2e-sentinel-secret-key-0123456789"
POOLS = ("pool-a", "pool-b", "pool-c")
INTERVAL = 1.0
STALE_AFTER = 3.0
GIB = 2**30


@dataclass
class Running(ExporterProcess):
    simulator: Simulator = field(kw_only=True)

    def until(self, check: Callable[[Samples], bool], timeout: float = 10.0) -> Samples:
        """Scrape until ``check`` holds; fail with the last scrape after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.scrape()
            if check(samples):
                return samples
            if time.monotonic() > deadline:
                pytest.fail(f"condition not met within {timeout}s")
            time.sleep(0.1)


def pool_counts(train_running: int) -> dict[str, dict[str, int]]:
    return {
        "train": {"Queue": 2, "Pending": 1, "Running": train_running, "Failed": 1},
        "infer": {"Running": 4, "Abnormal": 1},
        "notebook": {"Running": 2, "Terminated": 7},
    }


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    workdir = tmp_path_factory.mktemp("e2e")
    simulator = Simulator(access_keys={AK: SK})
    for i, pool in enumerate(POOLS):
        simulator.set_pool(PROJECT, pool, pool_counts(3 + i))
    for job_type in ("train", "inference"):
        simulator.set_specs(PROJECT, job_type, default_specs(job_type))
    simulator.start()
    config = workdir / "config.yaml"
    config.write_text(
        f"""
poll_interval: {INTERVAL}s
stale_after: {STALE_AFTER}s
jitter: 0
timeout: 2s
retry: {{max_attempts: 2, initial_backoff: 0.05s, max_backoff: 0.2s}}
targets:
  - project_id: "{PROJECT}"
    region: cn-north-4
    endpoint: {simulator.url}
    pools: [{", ".join(POOLS)}]
    resource_specs:
      job_types: [train, inference]
"""
    )
    env = {**os.environ, "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    yield from running_against(simulator, config, env, "--log.level=debug")


def running_against(
    simulator: Simulator, config: Path, env: dict[str, str], *flags: str
) -> Iterator[Running]:
    """Start the exporter on ``config`` against the started ``simulator``; yield it once
    ready; kill it and stop the simulator afterwards."""
    try:
        exporter = start_exporter(config, config.parent / "exporter.log", env, *flags)
        try:
            running = Running(
                exporter.process, exporter.log_path, exporter.url, simulator=simulator
            )
            running.wait_ready()
            yield running
        finally:
            exporter.kill()
    finally:
        simulator.stop()


def failed_polls(samples: Samples, error_code: str) -> float:
    """modelarts_poll_errors_total of the workload API for ``error_code`` (0 when absent)."""
    labels = {"api": "workload_statistics", "error_code": error_code}
    found = value(samples, "modelarts_poll_errors_total", project_id=PROJECT, **labels)
    return found or 0.0


def item(pool_or_type: str, api: str = "workload_statistics") -> dict[str, str]:
    return {"project_id": PROJECT, "api": api, "target": pool_or_type}


def text(field: object) -> str:
    """A spec field the API gives as a string (a label value)."""
    assert isinstance(field, str), field
    return field


def number(field: object) -> float:
    """A spec field the API gives as a number, a numeric string or a boolean."""
    assert isinstance(field, str | int | float), field
    return float(field)


class TestValuesMatchTheApi:
    def test_every_job_count_equals_the_simulator_state(self, running: Running) -> None:
        """Each (pool, type, status) count and each type total equals what the API holds."""
        samples = running.scrape()
        state = running.simulator.snapshot_state().pools[PROJECT]
        compared = 0
        for pool, types in state.items():
            for job_type, statuses in types.items():
                # The API lists all nine documented statuses, zeros included.
                for status in STATUS_KEYS:
                    count = statuses.get(status, 0)
                    labels = {"pool": pool, "type": job_type, "status": status.lower()}
                    got = value(samples, "modelarts_pool_jobs", project_id=PROJECT, **labels)
                    assert got == count, (labels, got, count)
                    compared += 1
                total = value(
                    samples, "modelarts_pool_type_jobs", project_id=PROJECT, pool=pool,
                    type=job_type,
                )  # fmt: skip
                assert total == sum(statuses.values())
        # 3 pools x 3 types x 9 documented statuses (zeros included)
        assert compared == 81
        assert len(series(samples, "modelarts_pool_jobs")) == 81

    def test_every_spec_field_equals_the_simulator_state(self, running: Running) -> None:
        """Each spec's flags, numbers (memory in bytes) and info labels equal the API's."""
        samples = running.scrape()
        for job_type, specs in running.simulator.snapshot_state().specs[PROJECT].items():
            assert value(samples, "modelarts_specs", project_id=PROJECT, job_type=job_type) == len(
                specs
            )
            for spec in specs:
                key = {
                    "project_id": PROJECT,
                    "job_type": job_type,
                    "spec_code": text(spec["spec_code"]),
                }
                assert value(samples, "modelarts_spec_no_resource", **key) == number(
                    spec["no_resource"]
                )
                assert value(samples, "modelarts_spec_gpus", **key) == spec["gpu_num"]
                assert value(samples, "modelarts_spec_cpu_cores", **key) == number(spec["core"])
                memory = value(samples, "modelarts_spec_memory_bytes", **key)
                assert memory == number(spec["cpu"]) * GIB
                assert value(samples, "modelarts_spec_max_nodes", **key) == spec["max_num"]
                assert value(samples, "modelarts_spec_pricing_units", **key) == spec["unit_num"]
                info = {
                    **key,
                    "spec_id": str(spec["spec_id"]),
                    "gpu_type": text(spec["gpu_type"]),
                    "storage": text(spec["storage"]),
                    "interface_type": str(spec["interface_type"]),
                }
                assert value(samples, "modelarts_spec_info", **info) == 1.0

    def test_health_is_all_good(self, running: Running) -> None:
        """up is 1 and every item's last poll succeeded."""
        samples = running.scrape()
        assert value(samples, "modelarts_up", project_id=PROJECT) == 1.0
        success = series(samples, "modelarts_poll_success")
        assert len(success) == 5
        assert set(success.values()) == {1.0}

    def test_promtool_finds_nothing_in_live_metrics(self, running: Running) -> None:
        """promtool check metrics is silent on the live /metrics."""
        promtool = shutil.which("promtool")
        assert promtool, "promtool missing: install Debian's prometheus package (see .ci/run)"
        text = httpx.get(f"{running.url}/metrics").content
        result = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, check=False
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")

    def test_changes_upstream_show_within_an_interval(self, running: Running) -> None:
        """A new count in the simulator is on /metrics within about one interval."""
        running.simulator.set_pool(PROJECT, "pool-a", pool_counts(42))
        labels = {"pool": "pool-a", "type": "train", "status": "running"}
        started = time.monotonic()
        running.until(
            lambda s: value(s, "modelarts_pool_jobs", project_id=PROJECT, **labels) == 42, 5
        )
        assert time.monotonic() - started < 2 * INTERVAL + 1


class TestFailures:
    def test_failing_pool_keeps_data_until_stale_while_others_update(
        self, running: Running
    ) -> None:
        """A 503ing pool reports success 0 and its error code, keeps its last data until
        stale_after, then loses it; the other pools keep updating all along."""
        body = b'{"error_code": "ModelArts.0999", "error_msg": "busy"}'
        running.simulator.inject(Fault(path_contains="/pool-b/", status=503, body=body))
        failed = running.until(
            lambda s: value(s, "modelarts_poll_success", **item("pool-b")) == 0.0
        )
        b_running = {"pool": "pool-b", "type": "train", "status": "running"}
        assert value(failed, "modelarts_pool_jobs", project_id=PROJECT, **b_running) == 4.0
        assert failed_polls(failed, "ModelArts.0999") >= 1
        running.simulator.set_pool(PROJECT, "pool-a", pool_counts(7))
        a_running = {"pool": "pool-a", "type": "train", "status": "running"}
        running.until(
            lambda s: value(s, "modelarts_pool_jobs", project_id=PROJECT, **a_running) == 7.0
        )
        gone = running.until(
            lambda s: value(s, "modelarts_pool_jobs", project_id=PROJECT, **b_running) is None,
            STALE_AFTER + 3,
        )
        assert value(gone, "modelarts_poll_success", **item("pool-b")) == 0.0
        assert value(gone, "modelarts_poll_last_success_timestamp_seconds", **item("pool-b"))
        running.simulator.clear_faults()
        running.until(
            lambda s: value(s, "modelarts_pool_jobs", project_id=PROJECT, **b_running) == 4.0,
            2 * INTERVAL + 2,
        )

    def test_failed_poll_is_logged_with_status_code_and_request_id(self, running: Running) -> None:
        """The poll_failed log line names pool, api, HTTP status, error code and request id."""
        failures = [e for e in running.logs() if e.get("event") == "poll_failed"]
        line = next(e for e in failures if e.get("target") == "pool-b")
        assert line["api"] == "workload_statistics"
        assert line["http_status"] == 503
        assert line["error_code"] == "ModelArts.0999"
        assert len(line["request_id"]) == 32
        assert line["level"] == "warning"

    def test_removed_pool_leaves_at_once(self, running: Running) -> None:
        """A pool answering 404 ModelArts.50015001 loses its series in the next cycle."""
        running.simulator.remove_pool(PROJECT, "pool-c")
        samples = running.until(
            lambda s: value(s, "modelarts_poll_success", **item("pool-c")) == 0.0
        )
        assert not series(samples, "modelarts_pool_jobs", pool="pool-c")
        assert series(samples, "modelarts_pool_jobs", pool="pool-a")

    def test_refused_credentials_cost_at_most_one_request_per_interval(
        self, running: Running
    ) -> None:
        """Under 401 the target sends at most one request per cycle, never retried, backs
        off after refused cycles in a row, is down, and recovers once accepted."""
        running.simulator.inject(Fault.unauthorized())
        running.until(lambda s: value(s, "modelarts_up", project_id=PROJECT) == 0.0)
        running.simulator.clear_requests()
        time.sleep(4 * INTERVAL + 0.2)
        sent = [r for r in running.simulator.requests() if r.status == 401]
        running.simulator.clear_faults()
        # 4-5 cycles in 4.2 s, but the refused target waits 2 then 4 intervals: 1-2 probes,
        # never a burst of retries or fan-out.
        assert 1 <= len(sent) <= 2, [(r.time, r.path) for r in sent]
        assert len(running.simulator.requests()) == len(sent)
        samples = running.until(
            lambda s: value(s, "modelarts_up", project_id=PROJECT) == 1.0, timeout=15
        )
        assert failed_polls(samples, "skipped_auth_failure") >= 2
        assert failed_polls(samples, "skipped_auth_backoff") >= 2


class TestShutdown:
    def test_sigterm_exits_zero_quickly_and_logs_hold_no_secret(self, running: Running) -> None:
        """SIGTERM stops the exporter with code 0 within 5 s; neither AK nor SK was logged."""
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=5) == 0
        text = running.log_path.read_text()
        assert "exporter_stopped" in text
        assert SK not in text
        assert AK not in text
