"""The dashboards end to end, through Debian's real Prometheus.

simulator → two modelarts-exporter replicas (an HA pair) → Prometheus with the shipped
recording rules. Proves: both targets are up, every dashboard panel query returns data, and
the panels count what the simulator has, once, not once per replica. (Every alert, through
Alertmanager too, is tests/test_alerting_e2e.py's.)
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.stack import PROJECT, Stack, StackOptions, running, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running(StackOptions(replicas=2)) as started:
        wait_for(
            "both replicas scraped",
            lambda: len(started.query('up{job="modelarts-exporter"} == 1')) == 2,
        )
        # Not the failed-jobs rule: its subquery steps sit on step boundaries, so it appears
        # up to a step after start (the dashboards fall back to 0 until then).
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
    def test_both_replicas_are_up(self, stack: Stack) -> None:
        """Prometheus scrapes both exporters: up == 1 and modelarts_up == 1 for each."""
        ups = stack.query('up{job="modelarts-exporter"}')
        assert sorted(u["metric"]["instance"] for u in ups) == sorted(
            e.instance for e in stack.exporters
        )
        assert {u["value"][1] for u in ups} == {"1"}
        apis = stack.query("modelarts_up")
        assert {a["metric"]["project_id"] for a in apis} == {PROJECT}
        assert [a["value"][1] for a in apis] == ["1", "1"]

    def test_panels_count_each_job_once(self, stack: Stack) -> None:
        """The pools dashboard's "Running jobs" panel, with two replicas serving every pool,
        shows the simulator's number of running jobs, not twice as many."""
        generator = load_generator()
        board = json.loads((ROOT / "grafana" / "dashboards" / "modelarts-pools.json").read_text())
        variables = {"datasource": "prometheus", "project_id": PROJECT, "pool": ".*", "type": ".*"}
        (expr,) = [q for title, q in generator.panel_queries(board, variables)
                   if title == "Running jobs"]  # fmt: skip
        state = stack.simulator.snapshot_state().pools[PROJECT]
        running = sum(statuses.get("Running", 0) for pool in state.values()
                      for statuses in pool.values())  # fmt: skip
        assert running > 0
        (value,) = stack.query(expr)
        assert float(value["value"][1]) == running
        assert len(stack.query('modelarts_pool_jobs{status="running", type="train"}')) == 2 * len(
            state
        )

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
