"""A local monitoring stack on loopback: simulator → exporter → Prometheus → Alertmanager.

Used by the end-to-end test (short ``for:`` durations, a webhook receiver) and by
``make stack`` for people (``python -m tests.stack [--fast]``), which prints the URLs and runs
until Ctrl-C. Needs Debian's ``prometheus`` and ``prometheus-alertmanager`` on PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from exporter.simulator import Simulator, default_specs

__all__ = ["Stack", "StackOptions", "fast_rules", "free_port", "start"]

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
PROJECT = "5ac45ac45ac45ac45ac45ac45ac45ac4"
AK, SK = "STACKACCESSKEY000000", "stack-secret-key-not-real"
#: Found by discovery (ListPools), with their display names and node flavors.
POOLS = ("pool-train-a100", "pool-infer-snt9b", "pool-notebooks")
POOL_INFO = {
    "pool-train-a100": ("Training (A100)", "modelarts.bm.gpu.8a100", 4),
    "pool-infer-snt9b": ("Inference (NPU)", "modelarts.bm.npu.arm.8snt9b3.d", 2),
    "pool-notebooks": ("Notebooks", "modelarts.vm.gpu.t4", 3),
}
#: Configured in the exporter but unknown to the simulator: answers 404 ModelArts.50015001,
#: so error counters and failure panels have something to show.
RETIRED_POOL = "pool-retired"
JOB_NAME = "modelarts-exporter"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fast_rules(text: str, duration: str = "2s") -> str:
    """The rules with every ``for:`` shortened, for tests and demonstrations."""
    return re.sub(r"(?m)^(\s+for:\s*)\S+$", rf"\g<1>{duration}", text)


def quiet_state(simulator: Simulator) -> None:
    """Running pools, every node available, with running and completed jobs only; every
    spec available."""
    for pool, (display_name, flavor, nodes) in POOL_INFO.items():
        simulator.set_pool_info(
            PROJECT,
            pool,
            display_name=display_name,
            resources={flavor: (nodes, 2 * nodes)},
            nodes={"available": {flavor: nodes}},
        )
    for i, pool in enumerate(POOLS):
        simulator.set_pool(
            PROJECT,
            pool,
            {
                "train": {"Running": 2 + i, "Completed": 10},
                "infer": {"Running": 1},
                "notebook": {"Running": 3, "Terminated": 1},
            },
        )
    for job_type in ("train", "inference"):
        specs = [{**spec, "no_resource": False} for spec in default_specs(job_type)]
        simulator.set_specs(PROJECT, job_type, specs)


@dataclass
class StackOptions:
    poll_interval: str = "1s"
    scrape_interval: str = "1s"
    rules: str = field(default_factory=lambda: fast_rules(RULES.read_text()))
    webhook_url: str | None = None
    drift_every: float | None = None


@dataclass
class Stack:
    """Running processes and their URLs; ``stop()`` ends them all."""

    workdir: Path
    simulator: Simulator
    exporter_url: str
    prometheus_url: str
    alertmanager_url: str
    processes: list[subprocess.Popen[bytes]]
    stop_drift: threading.Event

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query against Prometheus; the result vector (its samples as decoded JSON)."""
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr})
        payload = response.json()
        if payload.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {payload}")
        result = payload["data"]["result"]
        assert isinstance(result, list)
        return result

    def stop(self) -> None:
        self.stop_drift.set()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.simulator.stop()


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: apt-get install prometheus prometheus-alertmanager")
    return found


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {timeout}s:\n{log.read_text()[-2000:]}")


def _spawn(
    command: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            list(command), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent
        )


def _exporter(
    workdir: Path, simulator: Simulator, options: StackOptions, port: int
) -> subprocess.Popen[bytes]:
    config = workdir / "exporter.yaml"
    config.write_text(
        json.dumps(
            {
                "poll_interval": options.poll_interval,
                "jitter": 0,
                "timeout": "2s",
                "targets": [
                    {
                        "project_id": PROJECT,
                        "region": "cn-north-4",
                        "endpoint": simulator.url,
                        "pools": [RETIRED_POOL],
                        "discovery": {"refresh_interval": options.poll_interval},
                        "resource_specs": {"job_types": ["train", "inference"]},
                    }
                ],
            }
        )
    )
    script = Path(sys.executable).with_name("modelarts-exporter")
    env = {**os.environ, "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    command = [str(script), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]
    return _spawn([*command, "--log.format=json"], workdir / "exporter.log", env)


def _prometheus(
    workdir: Path, options: StackOptions, ports: dict[str, int]
) -> subprocess.Popen[bytes]:
    (workdir / "rules.yml").write_text(options.rules)
    (workdir / "prometheus.yml").write_text(
        json.dumps(
            {
                "global": {
                    "scrape_interval": options.scrape_interval,
                    "evaluation_interval": options.scrape_interval,
                },
                "rule_files": ["rules.yml"],
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}
                    ]
                },
                "scrape_configs": [
                    {
                        "job_name": JOB_NAME,
                        "static_configs": [{"targets": [f"127.0.0.1:{ports['exporter']}"]}],
                    }
                ],
            }
        )
    )
    command = [
        _binary("prometheus"),
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
        "--rules.alert.resend-delay=1s",
    ]
    return _spawn(command, workdir / "prometheus.log")


def _alertmanager(workdir: Path, options: StackOptions, port: int) -> subprocess.Popen[bytes]:
    receiver: dict[str, object] = {"name": "default"}
    if options.webhook_url:
        receiver["webhook_configs"] = [{"url": options.webhook_url, "send_resolved": True}]
    (workdir / "alertmanager.yml").write_text(
        json.dumps(
            {
                "route": {
                    "receiver": "default",
                    "group_by": ["alertname", "project_id", "pool", "spec_code"],
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [receiver],
            }
        )
    )
    command = [
        _binary("prometheus-alertmanager"),
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return _spawn(command, workdir / "alertmanager.log")


def start(workdir: Path, options: StackOptions | None = None) -> Stack:
    """Start simulator, exporter, Alertmanager and Prometheus; return once all are ready."""
    options = options or StackOptions()
    simulator = Simulator(access_keys={AK: SK})
    quiet_state(simulator)
    simulator.start()
    ports = {name: free_port() for name in ("exporter", "prometheus", "alertmanager")}
    processes: list[subprocess.Popen[bytes]] = []
    stop_drift = threading.Event()
    stack = Stack(
        workdir,
        simulator,
        f"http://127.0.0.1:{ports['exporter']}",
        f"http://127.0.0.1:{ports['prometheus']}",
        f"http://127.0.0.1:{ports['alertmanager']}",
        processes,
        stop_drift,
    )
    try:
        starters: list[tuple[Callable[[], subprocess.Popen[bytes]], str, str]] = [
            (lambda: _exporter(workdir, simulator, options, ports["exporter"]),
             f"{stack.exporter_url}/readyz", "exporter.log"),
            (lambda: _alertmanager(workdir, options, ports["alertmanager"]),
             f"{stack.alertmanager_url}/-/ready", "alertmanager.log"),
            (lambda: _prometheus(workdir, options, ports),
             f"{stack.prometheus_url}/-/ready", "prometheus.log"),
        ]  # fmt: skip
        for starter, ready_url, log in starters:
            process = starter()
            processes.append(process)
            _wait_ready(ready_url, process, workdir / log)
    except BaseException:
        stack.stop()
        raise
    if options.drift_every:
        threading.Thread(
            target=_drift, args=(simulator, stop_drift, options.drift_every), daemon=True
        ).start()
    return stack


def _drift(simulator: Simulator, stop: threading.Event, every: float) -> None:
    rng = random.Random()
    while not stop.wait(every):
        simulator.drift(rng)


@contextlib.contextmanager
def running(options: StackOptions | None = None) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="modelarts-stack-") as tmp:
        stack = start(Path(tmp), options)
        try:
            yield stack
        finally:
            stack.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the local monitoring stack until Ctrl-C.")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="shorten every alert's for: to 10s (the shipped rules otherwise)",
    )
    args = parser.parse_args(argv)
    rules = RULES.read_text()
    options = StackOptions(
        poll_interval="5s",
        scrape_interval="5s",
        rules=fast_rules(rules, "10s") if args.fast else rules,
        drift_every=5.0,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with running(options) as stack:
        print(
            "\nModelArts monitoring stack (job counts drift every 5 s; Ctrl-C stops it):\n"
            f"  simulator     {stack.simulator.url}/_simulator/state\n"
            f"  exporter      {stack.exporter_url}/metrics\n"
            f"  prometheus    {stack.prometheus_url}/alerts\n"
            f"  alertmanager  {stack.alertmanager_url}/#/alerts\n"
            f"  rules         {'shipped, for: shortened to 10s' if args.fast else 'shipped'}\n"
            f"  logs          {stack.workdir}\n",
            flush=True,
        )
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
