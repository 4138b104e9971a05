"""A local monitoring stack on loopback: simulator → exporter(s) → Prometheus → Alertmanager.

The rules are the mixin's (``deploy/prometheus/mixin.py``), the Alertmanager configuration
the shipped ``deploy/alertmanager/alertmanager.yml`` with each receiver's integrations replaced
by a webhook to ``<webhook_url><receiver name>``. Fast mode scales every ``for:``, window and
step of the rules, the exporter's poll interval and Alertmanager's group timings by one factor
(``FAST_SCALE``: a minute becomes two seconds), so that the windows themselves are exercised.

Used by the end-to-end tests (``tests/e2e/test_prometheus_e2e.py``,
``tests/e2e/test_alerting_e2e.py``) and by ``make stack`` for people
(``python -m tests.support.stack [--fast]``), which prints the URLs and every notification,
and runs until Ctrl-C. Needs Debian's ``prometheus`` and
``prometheus-alertmanager`` on PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.simulator import Simulator, default_specs
from tests.support.scripts import mixin

__all__ = [
    "FAST_SCALE",
    "Stack",
    "StackOptions",
    "Webhook",
    "alertmanager_config",
    "fleet_state",
    "fleet_targets",
    "free_port",
    "main_target",
    "running",
    "start",
    "wait_for",
]

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
PROJECT = "5ac45ac45ac45ac45ac45ac45ac45ac4"
AK, SK = "STACKACCESSKEY000000", "stack-secret-key-not-real"
#: Found by discovery (ListPools), with their display names, node flavors and node counts.
POOL_INFO = {
    "pool-train-a100": ("Training (A100)", "modelarts.bm.gpu.8a100", 4),
    "pool-infer-snt9b": ("Inference (NPU)", "modelarts.bm.npu.arm.8snt9b3.d", 2),
    "pool-notebooks": ("Notebooks", "modelarts.vm.gpu.t4", 3),
}
POOLS = tuple(POOL_INFO)
#: Configured in the exporter but unknown to the simulator: answers 404 ModelArts.50015001,
#: so error counters and failure panels have something to show.
RETIRED_POOL = "pool-retired"
JOB_NAME = "modelarts-exporter"
#: Fast mode: one minute of the shipped rules is two seconds.
FAST_SCALE = 1 / 30


def wait_for(what: str, check: Callable[[], object], timeout: float = 150) -> None:
    """Until ``check()`` is true (a non-empty list counts); fail the test after ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.25)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rules(scale: float | None) -> str:
    """The shipped rules, every duration multiplied by ``scale`` (None: as shipped)."""
    generator = mixin()
    settings = generator.load_settings()
    text = generator.rules_text(settings if scale is None else settings.scaled(scale))
    assert isinstance(text, str)
    return text


def _scaled(duration: str, scale: float | None) -> str:
    if scale is None:
        return duration
    generator = mixin()
    return str(generator.Duration(generator.Duration.parse(duration).seconds * scale))


def alertmanager_config(webhook_url: str | None, scale: float | None) -> str:
    """The shipped Alertmanager configuration, routes and inhibitions untouched: every
    receiver's integrations become one webhook to ``webhook_url`` + its name (none without a
    URL), and the group timings are scaled like the rules."""
    document = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    for receiver in document["receivers"]:
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        if webhook_url:
            url = webhook_url + receiver["name"]
            receiver["webhook_configs"] = [{"url": url, "send_resolved": True}]

    def scale_route(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in route:
                route[key] = _scaled(route[key], scale)
        for child in route.get("routes", []):
            scale_route(child)

    scale_route(document["route"])
    return yaml.safe_dump(document, sort_keys=False)


class Webhook:
    """Collects Alertmanager's webhook notifications: (receiver, alert) in arrival order. The
    receiver is the last path segment of the URL Alertmanager posted to."""

    def __init__(self, echo: bool = False) -> None:
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        #: (arrival, receiver, whole notification) in order, for a failing test to show.
        self.log: list[tuple[float, str, dict[str, Any]]] = []
        #: What ``echo`` printed last of each alert (a group's notification repeats them all).
        self._echoed: dict[str, str] = {}
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver = self.path.rstrip("/").rsplit("/", 1)[-1]
                with received._lock:
                    received.notifications.extend((receiver, a) for a in body["alerts"])
                    received.log.append((time.monotonic(), receiver, body))
                if echo:
                    received.echo(receiver, body["alerts"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(
        self,
        alertname: str | None = None,
        status: str | None = None,
        **labels: str,
    ) -> list[tuple[str, dict[str, Any]]]:
        """(receiver, alert) notified so far, filtered by name, status and labels."""
        with self._lock:
            return [
                (receiver, alert)
                for receiver, alert in self.notifications
                if alertname in (None, alert["labels"]["alertname"])
                and status in (None, alert["status"])
                and all(alert["labels"].get(k) == v for k, v in labels.items())
            ]

    def echo(self, receiver: str, alerts: list[dict[str, Any]]) -> None:
        """Print each alert of a notification whose status changed since it was printed."""
        for alert in alerts:
            labels = dict(alert["labels"])
            name, severity = labels.pop("alertname"), labels.pop("severity", "")
            subject = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
            if self._echoed.get(name + subject) != alert["status"]:
                self._echoed[name + subject] = alert["status"]
                print(f"{receiver}: {alert['status']} {name} ({severity}) {subject}", flush=True)

    def timeline(self, start: float = 0.0) -> str:
        """Every notification so far, one line each: seconds since ``start``, receiver, and
        its alerts as status/name/labels."""
        with self._lock:
            lines = []
            for arrived, receiver, body in self.log:
                alerts = "; ".join(
                    f"{a['status']} {a['labels']['alertname']} "
                    + ",".join(f"{k}={v}" for k, v in sorted(a["labels"].items())
                               if k not in ("alertname", "severity"))
                    for a in body["alerts"]
                )  # fmt: skip
                lines.append(f"{arrived - start:8.1f}s {receiver}: {alerts}")
        return "\n".join(lines)

    def stop(self) -> None:
        self.server.shutdown()


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


def main_target(simulator: Simulator, poll_interval: float) -> dict[str, Any]:
    """The stack's project: its pools by discovery, a retired pool, and both spec types."""
    return {
        "project_id": PROJECT,
        "region": "cn-north-4",
        "endpoint": simulator.url,
        "pools": [RETIRED_POOL],
        "discovery": {"refresh_interval": f"{poll_interval}s"},
        "resource_specs": {"job_types": ["train", "inference"]},
    }


#: The fleet's second project, in another region: two configured pools, train specs only.
OTHER_PROJECT = "0ba5e0ba5e0ba5e0ba5e0ba5e0ba5e0b"
OTHER_REGION = "ap-southeast-3"
OTHER_POOLS = ("pool-sg-train", "pool-sg-infer")


def fleet_state(simulator: Simulator) -> None:
    """``quiet_state``, and a second project with jobs in its two pools, some waiting."""
    quiet_state(simulator)
    simulator.set_pool(
        OTHER_PROJECT,
        OTHER_POOLS[0],
        {"train": {"Running": 4, "Queue": 2, "Completed": 25, "Failed": 1}},
    )
    simulator.set_pool(
        OTHER_PROJECT, OTHER_POOLS[1], {"infer": {"Running": 6, "Pending": 1, "Terminated": 3}}
    )
    specs = [{**spec, "no_resource": False} for spec in default_specs("train")]
    simulator.set_specs(OTHER_PROJECT, "train", specs)


def fleet_targets(simulator: Simulator, poll_interval: float) -> list[dict[str, Any]]:
    """Two projects in two regions: ``main_target``'s, and ``OTHER_PROJECT`` with
    configured pools (no discovery)."""
    return [
        main_target(simulator, poll_interval),
        {
            "project_id": OTHER_PROJECT,
            "region": OTHER_REGION,
            "endpoint": simulator.url,
            "pools": list(OTHER_POOLS),
            "resource_specs": {"job_types": ["train"]},
        },
    ]


@dataclass
class StackOptions:
    #: Every duration of the rules, of Alertmanager's grouping and the poll interval
    #: multiplied by this (None: as shipped, polling every ``poll_interval`` seconds).
    scale: float | None = FAST_SCALE
    poll_interval: float = 60.0
    scrape_interval: str = "1s"
    #: Exporter processes polling the same projects (an HA pair when 2), one scrape job.
    replicas: int = 1
    #: The simulator's state before anything starts (default: ``quiet_state``).
    setup: Callable[[Simulator], None] = quiet_state
    #: The exporter's ``targets:`` for a simulator (default: ``main_target``).
    targets: Callable[[Simulator, float], list[dict[str, Any]]] = lambda sim, interval: [
        main_target(sim, interval)
    ]
    #: Other top-level exporter configuration keys.
    exporter: Mapping[str, Any] = field(default_factory=dict)
    webhook_url: str | None = None
    drift_every: float | None = None

    @property
    def interval(self) -> float:
        """The exporter's poll interval in seconds."""
        return self.poll_interval * (self.scale or 1.0)


@dataclass
class Exporter:
    """One exporter replica: its process, URL and configuration file."""

    process: subprocess.Popen[bytes]
    url: str
    config: Path
    instance: str


@dataclass
class Stack:
    """Running processes and their URLs; ``stop()`` ends them all."""

    workdir: Path
    options: StackOptions
    simulator: Simulator
    exporters: list[Exporter]
    prometheus_url: str
    alertmanager_url: str
    processes: list[subprocess.Popen[bytes]]
    stop_drift: threading.Event

    @property
    def exporter_url(self) -> str:
        return self.exporters[0].url

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query against Prometheus; the result vector (its samples as decoded JSON)."""
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr})
        payload = response.json()
        if payload.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {payload}")
        result = payload["data"]["result"]
        assert isinstance(result, list)
        return result

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds, inhibited and silenced ones included."""
        response = httpx.get(f"{self.alertmanager_url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        alerts = response.json()
        assert isinstance(alerts, list)
        return alerts

    def kill_exporter(self, index: int) -> None:
        """End replica ``index`` at once (SIGKILL), as a crashed process or a lost pod."""
        exporter = self.exporters[index]
        exporter.process.kill()
        exporter.process.wait()

    def start_exporter(self, index: int) -> None:
        """Start replica ``index`` again, on its address and configuration."""
        old = self.exporters[index]
        log = self.workdir / f"exporter-{index}.log"
        new = _exporter_process(old.config, old.instance, log)
        self.processes[self.processes.index(old.process)] = new
        self.exporters[index] = Exporter(new, old.url, old.config, old.instance)
        _wait_ready(f"{old.url}/readyz", new, log)

    def scrape_exporters(self, scraped: bool) -> None:
        """Let service discovery find the exporters, or none of them (the job stays, with
        no target: Prometheus marks the exporters' series stale, as when a deployment is
        gone). Prometheus reads the targets file within a second."""
        _write_targets(self.workdir, self if scraped else None)

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


def exporter_config(simulator: Simulator, options: StackOptions) -> dict[str, Any]:
    """The configuration every replica runs."""
    interval = options.interval
    return {
        "poll_interval": f"{interval}s",
        "jitter": 0,
        "timeout": f"{max(1.0, interval)}s",
        **options.exporter,
        "targets": options.targets(simulator, interval),
    }


def _exporter(
    workdir: Path, simulator: Simulator, options: StackOptions, index: int, port: int
) -> Exporter:
    config = workdir / f"exporter-{index}.yaml"
    config.write_text(json.dumps(exporter_config(simulator, options)))
    address = f"127.0.0.1:{port}"
    process = _exporter_process(config, address, workdir / f"exporter-{index}.log")
    return Exporter(process, f"http://{address}", config, address)


def _exporter_process(config: Path, address: str, log: Path) -> subprocess.Popen[bytes]:
    script = Path(sys.executable).with_name("modelarts-exporter")
    env = {**os.environ, "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    command = [str(script), f"--config.file={config}", f"--web.listen-address={address}"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [*command, "--log.format=json"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log.parent,
        )


def _write_targets(workdir: Path, stack: Stack | None) -> None:
    """The exporters' scrape targets (file service discovery), written whole at once."""
    targets = [{"targets": [e.instance for e in stack.exporters]}] if stack else []
    staged = workdir / "targets.json.new"
    staged.write_text(json.dumps(targets))
    staged.replace(workdir / "targets.json")


def _prometheus(workdir: Path, stack: Stack, port: int) -> subprocess.Popen[bytes]:
    (workdir / "rules.yml").write_text(rules(stack.options.scale))
    _write_targets(workdir, stack)
    interval = stack.options.scrape_interval
    alertmanager = stack.alertmanager_url.removeprefix("http://")
    (workdir / "prometheus.yml").write_text(
        json.dumps(
            {
                "global": {
                    "scrape_interval": interval,
                    "scrape_timeout": interval,
                    "evaluation_interval": interval,
                },
                "rule_files": ["rules.yml"],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
                "scrape_configs": [
                    {
                        "job_name": JOB_NAME,
                        "file_sd_configs": [
                            {"files": [str(workdir / "targets.json")], "refresh_interval": "1s"}
                        ],
                    }
                ],
            }
        )
    )
    command = [
        _binary("prometheus"),
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--rules.alert.resend-delay=1s",
    ]
    return _spawn(command, workdir / "prometheus.log")


def _alertmanager(workdir: Path, options: StackOptions, port: int) -> subprocess.Popen[bytes]:
    (workdir / "alertmanager.yml").write_text(
        alertmanager_config(options.webhook_url, options.scale)
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
    """Start simulator, exporters, Alertmanager and Prometheus; return once all are ready."""
    options = options or StackOptions()
    simulator = Simulator(access_keys={AK: SK})
    options.setup(simulator)
    simulator.start()
    ports = {"prometheus": free_port(), "alertmanager": free_port()}
    processes: list[subprocess.Popen[bytes]] = []
    stack = Stack(
        workdir,
        options,
        simulator,
        [],
        f"http://127.0.0.1:{ports['prometheus']}",
        f"http://127.0.0.1:{ports['alertmanager']}",
        processes,
        threading.Event(),
    )
    try:
        for index in range(options.replicas):
            exporter = _exporter(workdir, simulator, options, index, free_port())
            stack.exporters.append(exporter)
            processes.append(exporter.process)
            log = workdir / f"exporter-{index}.log"
            _wait_ready(f"{exporter.url}/readyz", exporter.process, log)
        starters: list[tuple[Callable[[], subprocess.Popen[bytes]], str, str]] = [
            (lambda: _alertmanager(workdir, options, ports["alertmanager"]),
             f"{stack.alertmanager_url}/-/ready", "alertmanager.log"),
            (lambda: _prometheus(workdir, stack, ports["prometheus"]),
             f"{stack.prometheus_url}/-/ready", "prometheus.log"),
        ]  # fmt: skip
        for starter, ready_url, log_name in starters:
            process = starter()
            processes.append(process)
            _wait_ready(ready_url, process, workdir / log_name)
    except BaseException:
        stack.stop()
        raise
    if options.drift_every:
        threading.Thread(
            target=_drift, args=(simulator, stack.stop_drift, options.drift_every), daemon=True
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
        help=f"run every duration {1 / FAST_SCALE:g} times faster: rules' for: and windows, the "
        "poll interval, Alertmanager's grouping (a minute becomes two seconds)",
    )
    args = parser.parse_args(argv)
    webhook = Webhook(echo=True)
    options = StackOptions(
        scale=FAST_SCALE if args.fast else None,
        poll_interval=60.0 if args.fast else 5.0,
        scrape_interval="1s" if args.fast else "5s",
        webhook_url=webhook.url,
        drift_every=5.0,
        setup=fleet_state,
        targets=fleet_targets,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with running(options) as stack:
        scale = f"{1 / FAST_SCALE:g} times faster" if args.fast else "as shipped"
        print(
            "\nModelArts monitoring stack (job counts drift every 5 s; Ctrl-C stops it):\n"
            f"  simulator     {stack.simulator.url}/_simulator/state\n"
            f"  exporter      {stack.exporter_url}/metrics\n"
            f"  prometheus    {stack.prometheus_url}/alerts\n"
            f"  alertmanager  {stack.alertmanager_url}/#/alerts\n"
            f"  rules         deploy/prometheus/rules.yml, {scale}\n"
            f"  notifications printed below, by receiver (deploy/alertmanager/alertmanager.yml)\n"
            f"  logs          {stack.workdir}\n",
            flush=True,
        )
        stop.wait()
    webhook.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
