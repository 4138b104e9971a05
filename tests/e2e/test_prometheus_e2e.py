"""The dashboards end to end, through Debian's real Prometheus.

simulator → two modelarts-exporter replicas (an HA pair) polling two projects in two regions →
Prometheus with the shipped recording and alerting rules. Proves: both targets are up, every
series of a project names its region, every dashboard panel query returns data with no
constant to fall back on, every template variable offers values, a region selects its
projects, the panels count what the simulator has once, not once per replica, and a firing
alert appears as the pools dashboard's annotation. (Every alert, through Alertmanager too,
is tests/e2e/test_alerting_e2e.py's.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.support import scripts
from tests.support.stack import (
    OTHER_POOLS,
    OTHER_PROJECT,
    OTHER_REGION,
    POOLS,
    PROJECT,
    RETIRED_POOL,
    Stack,
    StackOptions,
    fleet_state,
    fleet_targets,
    running,
    wait_for,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "grafana" / "dashboards"
REGIONS = {PROJECT: "cn-north-4", OTHER_PROJECT: OTHER_REGION}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    options = StackOptions(replicas=2, setup=fleet_state, targets=fleet_targets)
    with running(options) as started:
        wait_for(
            "both replicas scraped",
            lambda: len(started.query('up{job="modelarts-exporter"} == 1')) == 2,
        )
        # The failed-jobs rule's subquery steps sit on step boundaries: it appears up to a
        # step after the others.
        for rule in ("modelarts:pool_jobs_waiting:sum", "modelarts:pool_jobs_failed:new"):
            wait_for(f"recording rule {rule}", partial(started.query, rule))
        # rate() and increase() panels need at least two samples in their window.
        wait_for(
            "three scrapes of history",
            lambda: bool(started.query('count_over_time(up{job="modelarts-exporter"}[1m]) >= 3')),
        )
        yield started


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return scripts.generator()


def boards() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, json.loads(path.read_text())) for path in sorted(DASHBOARDS.glob("*.json"))]


def label_values(stack: Stack, selector: str, label: str) -> list[str]:
    """What Grafana's ``label_values(selector, label)`` offers, asked as Grafana asks it."""
    params = {"match[]": selector} if selector else {}
    response = httpx.get(f"{stack.prometheus_url}/api/v1/label/{label}/values", params=params)
    payload = response.json()
    assert payload["status"] == "success", payload
    return list(payload["data"])


BASE = {"datasource": "prometheus"}


class TestScrape:
    def test_both_replicas_are_up(self, stack: Stack) -> None:
        """Prometheus scrapes both exporters: up == 1, and modelarts_up == 1 for each project
        on each replica."""
        ups = stack.query('up{job="modelarts-exporter"}')
        assert sorted(u["metric"]["instance"] for u in ups) == sorted(
            e.instance for e in stack.exporters
        )
        assert {u["value"][1] for u in ups} == {"1"}
        apis = stack.query("modelarts_up")
        assert sorted(a["metric"]["project_id"] for a in apis) == sorted(2 * [*REGIONS])
        assert {a["value"][1] for a in apis} == {"1"}

    def test_every_project_series_names_its_region(self, stack: Stack) -> None:
        """Every series with a project_id, scraped or recorded, has its project's region."""
        pairs = stack.query('count by (project_id, region) ({project_id!=""})')
        assert {p["metric"]["project_id"]: p["metric"]["region"] for p in pairs} == REGIONS
        assert len(pairs) == len(REGIONS)

    def test_panels_count_each_job_once(self, stack: Stack, generator: ModuleType) -> None:
        """The pools dashboard's "Running jobs" panel, with two replicas serving every pool,
        shows the simulator's number of running jobs, not twice as many."""
        board = json.loads((DASHBOARDS / "modelarts-pools.json").read_text())
        variables = {**BASE, "region": "cn-north-4", "project_id": PROJECT}
        (expr,) = [q for title, q in generator.panel_queries(board, variables)
                   if title == "Running jobs"]  # fmt: skip
        state = stack.simulator.snapshot_state().pools[PROJECT]
        running_jobs = sum(statuses.get("Running", 0) for pool in state.values()
                           for statuses in pool.values())  # fmt: skip
        assert running_jobs > 0
        (value,) = stack.query(expr)
        assert float(value["value"][1]) == running_jobs
        selector = f'modelarts_pool_jobs{{project_id="{PROJECT}", status="running", type="train"}}'
        assert len(stack.query(selector)) == 2 * len(state)


class TestDashboards:
    def test_every_panel_query_returns_data(self, stack: Stack, generator: ModuleType) -> None:
        """Each panel query of each dashboard, with every variable at All, returns a series,
        and none of them falls back to a constant (``or vector(...)``) to do so."""
        empty = []
        checked = 0
        for name, board in boards():
            for title, expr in generator.panel_queries(board, BASE):
                checked += 1
                assert "vector(" not in expr, f"{name}: {title}"
                if not stack.query(expr):
                    empty.append(f"{name}: {title}: {expr}")
        assert checked >= 50
        assert empty == []

    def test_every_variable_offers_values(self, stack: Stack, generator: ModuleType) -> None:
        """Each template variable's ``label_values`` query, the others at All, offers at
        least one value; region offers both regions and project both projects."""
        offered: dict[str, set[str]] = {}
        for name, board in boards():
            for variable, selector, label in generator.variable_queries(board, BASE):
                values = label_values(stack, selector, label)
                assert values, f"{name}: ${variable}: label_values({selector}, {label})"
                offered.setdefault(variable, set()).update(values)
        assert offered["region"] == set(REGIONS.values())
        assert offered["project_id"] == set(REGIONS)
        # Not the retired pool: it never answered, so it has no job series.
        assert offered["pool"] == {*POOLS, *OTHER_POOLS}

    def test_a_region_selects_its_projects(self, stack: Stack, generator: ModuleType) -> None:
        """With region set to one region, the project variable offers that region's project
        only, and the fleet overview's per-project panels show only it."""
        board = json.loads((DASHBOARDS / "modelarts-fleet.json").read_text())
        variables = {**BASE, "region": OTHER_REGION}
        (project,) = [q for q in generator.variable_queries(board, variables)
                      if q[0] == "project_id"]  # fmt: skip
        assert label_values(stack, project[1], project[2]) == [OTHER_PROJECT]
        queries = dict(generator.panel_queries(board, variables))
        series = stack.query(queries["Waiting jobs by project"])
        assert [s["metric"]["project_id"] for s in series] == [OTHER_PROJECT]
        (total,) = stack.query(queries["Waiting jobs"])
        state = stack.simulator.snapshot_state().pools[OTHER_PROJECT]
        waiting = sum(statuses.get(s, 0) for pool in state.values()
                      for statuses in pool.values() for s in ("Queue", "Pending"))  # fmt: skip
        assert float(total["value"][1]) == waiting > 0

    def test_a_firing_alert_is_an_annotation_of_the_pools_dashboard(
        self, stack: Stack, generator: ModuleType
    ) -> None:
        """Once ModelArtsPoolNotFound fires for the retired pool, the pools dashboard's alert
        annotation query returns it; selecting another pool leaves it out."""
        board = json.loads((DASHBOARDS / "modelarts-pools.json").read_text())
        (annotation,) = board["annotations"]["list"]

        def firing(pool: str) -> list[dict[str, Any]]:
            expr = generator.expand(annotation["expr"], board, {**BASE, "pool": pool})
            return stack.query(expr)

        wait_for(
            "ModelArtsPoolNotFound firing",
            lambda: any(a["metric"]["alertname"] == "ModelArtsPoolNotFound" for a in firing(".*")),
        )
        found = [a["metric"] for a in firing(RETIRED_POOL)]
        assert {"alertname": "ModelArtsPoolNotFound", "pool": RETIRED_POOL} in [
            {k: m[k] for k in ("alertname", "pool")} for m in found if "pool" in m
        ]
        other = [a["metric"] for a in firing("pool-notebooks")]
        assert all(m.get("pool") != RETIRED_POOL for m in other)


class Recording:
    """``grafana/render.py``'s Prometheus queries, and the failures among them."""

    def __init__(self, url: str) -> None:
        self.render = scripts.renderer()
        self.inner = self.render.Prometheus(url)
        self.failed: list[str] = []
        self.asked = 0

    def _ask(self, method: str, expr: str, *args: float) -> Any:
        self.asked += 1
        try:
            return getattr(self.inner, method)(expr, *args)
        except self.render.QueryError as error:
            self.failed.append(f"{expr}: {error}")
            raise

    def range(self, expr: str, start: float, end: float, step: float) -> Any:
        return self._ask("range", expr, start, end, step)

    def instant(self, expr: str, at: float) -> Any:
        return self._ask("instant", expr, at)


class TestPictures:
    def test_every_dashboard_renders_from_the_live_prometheus(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        """grafana/render.py draws every dashboard from this Prometheus (what ``make
        screenshots`` does, shorter): no query fails, and each PNG names the panels of its
        dashboard."""
        queries = Recording(stack.prometheus_url)
        render = queries.render
        window = render.Window.last(60)
        for name, board in boards():
            out = tmp_path / f"{board['uid']}.png"
            titles = render.render_dashboard(board, queries, window, out)
            assert json.loads(render.png_text(out)["Description"]) == titles
            assert titles == [p["title"] for p in board["panels"]], name
        assert queries.asked >= 50
        assert queries.failed == []
