"""End to end through Debian's real Prometheus and Alertmanager.

simulator → modelarts-exporter process → Prometheus (shipped rules, ``for:`` shortened) →
Alertmanager → a webhook receiver run by this test. Proves: the target is up, every
dashboard panel query returns data, and the job and capacity alerts fire with the right
labels when the simulator turns bad, and resolve when it recovers.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.stack import POOL_INFO, PROJECT, Stack, StackOptions, free_port, running

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
NPU_SPEC = "modelarts.bm.npu.arm.8snt9b3.d"


class Webhook:
    """Collects Alertmanager's webhook notifications."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with received._lock:
                    received.alerts.extend(body["alerts"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self, alertname: str, status: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                a
                for a in self.alerts
                if a["labels"]["alertname"] == alertname and a["status"] == status
            ]


def wait_for(what: str, check: Callable[[], object], timeout: float = 40) -> None:
    """Until ``check()`` is true (a non-empty list counts), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()


@pytest.fixture(scope="module")
def stack(webhook: Webhook) -> Iterator[Stack]:
    with running(StackOptions(webhook_url=webhook.url)) as started:
        wait_for(
            "the first scrape",
            lambda: bool(started.query('up{job="modelarts-exporter"} == 1')),
        )
        # Not new15m: its 1-minute subquery steps sit on minute boundaries, so it appears
        # up to a minute after start (the dashboards fall back to 0 until then).
        wait_for(
            "recording rules",
            lambda: bool(started.query("modelarts:pool_jobs_waiting:sum")),
        )
        # rate() and increase() panels need at least two samples in their window.
        wait_for(
            "three scrapes of history",
            lambda: bool(started.query('count_over_time(up{job="modelarts-exporter"}[1m]) >= 3')),
        )
        yield started


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards", ROOT / "grafana" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestScrape:
    def test_target_is_up(self, stack: Stack) -> None:
        """Prometheus scrapes the exporter: up == 1 and modelarts_up == 1."""
        (up,) = stack.query('up{job="modelarts-exporter"}')
        assert up["value"][1] == "1"
        (api,) = stack.query("modelarts_up")
        assert api["metric"]["project_id"] == PROJECT
        assert api["value"][1] == "1"

    def test_every_dashboard_panel_query_returns_data(self, stack: Stack) -> None:
        """Each panel query of each dashboard, variables substituted, returns a series."""
        generator = load_generator()
        variables = {
            "datasource": "prometheus",
            "project_id": PROJECT,
            "pool": ".*",
            "type": ".*",
            "job_type": ".*",
            "instance": ".*",
        }
        empty = []
        checked = 0
        for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
            dashboard = json.loads(path.read_text())
            for title, expr in generator.panel_queries(dashboard, variables):
                checked += 1
                if not stack.query(expr):
                    empty.append(f"{path.name}: {title}: {expr}")
        assert checked >= 15
        assert empty == []


class TestAlerts:
    def test_abnormal_jobs_and_exhausted_spec_fire_and_resolve(
        self, stack: Stack, webhook: Webhook
    ) -> None:
        """Abnormal jobs in one pool and an NPU spec with no resources reach the webhook with
        their pool / spec labels, and resolve once the simulator recovers."""
        state = stack.simulator.snapshot_state()
        pool = state.pools[PROJECT]["pool-infer-snt9b"]
        stack.simulator.set_pool(
            PROJECT, "pool-infer-snt9b", {**pool, "train": {**pool["train"], "Abnormal": 2}}
        )
        specs = state.specs[PROJECT]["train"]
        exhausted = [{**s, "no_resource": s["spec_code"] == NPU_SPEC} for s in specs]
        stack.simulator.set_specs(PROJECT, "train", exhausted)

        wait_for("abnormal alert", lambda: webhook.received("ModelArtsJobsAbnormal", "firing"))
        wait_for(
            "spec alert",
            lambda: webhook.received("ModelArtsAcceleratorSpecExhausted", "firing"),
        )
        (abnormal,) = {
            json.dumps(a["labels"], sort_keys=True): a
            for a in webhook.received("ModelArtsJobsAbnormal", "firing")
        }.values()
        assert abnormal["labels"] | {} == {
            "alertname": "ModelArtsJobsAbnormal",
            "severity": "warning",
            "project_id": PROJECT,
            "pool": "pool-infer-snt9b",
            "type": "train",
        }
        assert "pool-infer-snt9b" in abnormal["annotations"]["description"]
        assert abnormal["annotations"]["runbook_url"].endswith("#modelartsjobsabnormal")
        spec_alert = webhook.received("ModelArtsAcceleratorSpecExhausted", "firing")[0]
        assert spec_alert["labels"]["spec_code"] == NPU_SPEC
        assert spec_alert["labels"]["job_type"] == "train"
        assert spec_alert["labels"]["severity"] == "warning"
        assert not webhook.received("ModelArtsSpecExhausted", "firing")

        stack.simulator.set_pool(PROJECT, "pool-infer-snt9b", pool)
        stack.simulator.set_specs(PROJECT, "train", specs)
        wait_for("abnormal resolved", lambda: webhook.received("ModelArtsJobsAbnormal", "resolved"))
        wait_for(
            "spec resolved",
            lambda: webhook.received("ModelArtsAcceleratorSpecExhausted", "resolved"),
        )
        resolved = webhook.received("ModelArtsJobsAbnormal", "resolved")[0]
        assert resolved["labels"]["pool"] == "pool-infer-snt9b"

    def test_abnormal_pool_and_nodes_fire_and_resolve(self, stack: Stack, webhook: Webhook) -> None:
        """A discovered pool that turns Abnormal with an abnormal node fires the pool and node
        alerts with its pool, phase and flavor labels, and both resolve once it recovers."""
        pool, flavor = "pool-notebooks", POOL_INFO["pool-notebooks"][1]
        display_name, _, nodes = POOL_INFO[pool]

        def set_abnormal(abnormal: int) -> None:
            stack.simulator.set_pool_info(
                PROJECT,
                pool,
                display_name=display_name,
                phase="Abnormal" if abnormal else "Running",
                resources={flavor: (nodes, 2 * nodes)},
                nodes={"available": {flavor: nodes - abnormal}, "abnormal": {flavor: abnormal}},
            )

        set_abnormal(1)
        wait_for("pool alert", lambda: webhook.received("ModelArtsPoolUnhealthy", "firing"))
        wait_for("node alert", lambda: webhook.received("ModelArtsPoolNodesAbnormal", "firing"))
        unhealthy = webhook.received("ModelArtsPoolUnhealthy", "firing")[0]
        assert unhealthy["labels"]["pool"] == pool
        assert unhealthy["labels"]["phase"] == "Abnormal"
        assert display_name in unhealthy["annotations"]["description"]
        node_alert = webhook.received("ModelArtsPoolNodesAbnormal", "firing")[0]
        assert (node_alert["labels"]["pool"], node_alert["labels"]["flavor"]) == (pool, flavor)

        set_abnormal(0)
        wait_for("pool resolved", lambda: webhook.received("ModelArtsPoolUnhealthy", "resolved"))
        wait_for(
            "nodes resolved", lambda: webhook.received("ModelArtsPoolNodesAbnormal", "resolved")
        )
