"""Graceful shutdown of the real process: SIGTERM or SIGINT stops polling, cancels the
requests in flight, closes the clients and the server, and exits 0 within 5 s, even while
every request to ModelArts hangs."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.simulator import Fault, Simulator
from tests.support.processes import ExporterProcess, start_exporter

pytestmark = pytest.mark.e2e

PROJECT = "5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d"
AK = "SHUTDOWNACCESSKEY000"
SK = "shutdown-sentinel-secret-key-0123456789"
POOLS = [f"pool-{i}" for i in range(5)]
#: The longest a stop may take, from the signal to the process's exit.
DEADLINE = 5.0
_ESTABLISHED = "01"


def connections_to(port: int) -> int:
    """Established TCP connections to ``port`` on loopback (from /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state == _ESTABLISHED and int(remote.rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


@pytest.fixture
def hanging(tmp_path: Path) -> Iterator[ExporterProcess]:
    """An exporter whose pool requests all hang for 60 s (ListPools answers, so the pools
    go out together); returns once they are all in flight."""
    simulator = Simulator(access_keys={AK: SK})
    for name in POOLS:
        simulator.set_pool(PROJECT, name, {"train": {"Running": 1}})
        simulator.set_pool_info(PROJECT, name)
    simulator.inject(Fault(api="workloads", latency=60))
    with simulator:
        config = tmp_path / "config.yaml"
        config.write_text(
            f"""
poll_interval: 1s
jitter: 0
timeout: 60s
retry: {{max_attempts: 1}}
targets:
  - project_id: "{PROJECT}"
    region: cn-north-4
    endpoint: {simulator.url}
    discovery: {{}}
"""
        )
        env = {**os.environ, "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
        exporter = start_exporter(config, tmp_path / "exporter.log", env)
        try:
            deadline = time.monotonic() + 10
            while connections_to(simulator.port) < len(POOLS):
                assert time.monotonic() < deadline, "the pool requests never went out"
                time.sleep(0.05)
            yield exporter
        finally:
            exporter.kill()


def events(exporter: ExporterProcess) -> list[str]:
    return [str(entry.get("event")) for entry in exporter.logs()]


class TestGracefulShutdown:
    @pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
    def test_a_stop_signal_exits_zero_within_5_s_while_every_request_hangs(
        self, hanging: ExporterProcess, stop_signal: signal.Signals
    ) -> None:
        """With 5 requests hanging upstream, SIGTERM (or SIGINT) ends the process with
        code 0 in under 5 s, with no traceback, logging exporter_stopping then
        exporter_stopped."""
        sent = time.monotonic()
        hanging.process.send_signal(stop_signal)
        code = hanging.process.wait(timeout=DEADLINE + 5)
        took = time.monotonic() - sent
        assert code == 0
        assert took < DEADLINE, f"took {took:.2f}s"
        assert events(hanging)[-2:] == ["exporter_stopping", "exporter_stopped"]
        assert "Traceback" not in hanging.log_path.read_text()

    def test_a_second_sigterm_during_shutdown_changes_nothing(
        self, hanging: ExporterProcess
    ) -> None:
        """A SIGTERM that arrives while the exporter is stopping neither kills it nor
        prints a traceback: it still exits 0, once, in time."""
        sent = time.monotonic()
        hanging.process.send_signal(signal.SIGTERM)
        while "exporter_stopping" not in events(hanging):
            assert time.monotonic() - sent < DEADLINE, "exporter_stopping never logged"
            time.sleep(0.005)
        assert hanging.process.poll() is None, "stopped before the second signal"
        hanging.process.send_signal(signal.SIGTERM)
        assert hanging.process.wait(timeout=DEADLINE + 5) == 0
        assert time.monotonic() - sent < DEADLINE
        assert events(hanging).count("exporter_stopping") == 1
        assert events(hanging)[-1] == "exporter_stopped"
        assert "Traceback" not in hanging.log_path.read_text()
