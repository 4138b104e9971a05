"""The ``modelarts-fleet`` dashboard: every project and pool at a glance, across regions:
abnormal, failed and waiting jobs, exhausted specs, polling health; a project's or pool's
row links to its pools view.
"""

from __future__ import annotations

from board import LOCATION, alerts_annotation, dashboard
from panels import (
    Json,
    coloured_cells,
    count_stat,
    merged,
    once,
    override,
    row,
    sel,
    table,
    target,
    thresholds,
    timeseries,
)
from series import (
    JOBS,
    PER_ITEM,
    PER_POOL,
    PER_PROJECT,
    PER_STATUS,
    PHASES,
    REACHABLE,
    current_phase,
)

__all__ = ["POOL_LINK", "PROJECT_LINK", "fleet_dashboard"]

_REFUSED = {0: ("accepted", "green"), 1: ("refused", "red")}
_POOLS_URL = (
    "/d/modelarts-pools/modelarts-pools-overview?${__url_time_range}"
    "&var-datasource=${datasource}&var-region=${__data.fields.region}"
)
PROJECT_LINK = f"{_POOLS_URL}&var-project_id=${{__value.raw}}"
"""A project's cell → the pools overview of that project (same data source and time)."""
POOL_LINK = f"{_POOLS_URL}&var-project_id=${{__data.fields.project_id}}&var-pool=${{__value.raw}}"
"""A pool's cell → the pools overview of that pool."""


def link(title: str, url: str) -> Json:
    """A data link of a table column: a click on a cell opens ``url`` (same tab)."""
    return {"targetBlank": False, "title": title, "url": url}


def fleet_dashboard() -> Json:
    """Every project and pool at a glance, across regions: what is wrong now, in which
    project and pool, and whether the exporters see it all; a pool's row opens it in the
    pools overview."""
    not_discovery = 'api!="pools"'
    waiting = sel("modelarts:pool_jobs_waiting:sum", LOCATION)
    abnormal = sel("modelarts:pool_jobs_abnormal:sum", LOCATION)
    failed = sel("modelarts:pool_jobs_failed:new", LOCATION)
    exhausted = sel("modelarts:specs_no_resource:count", LOCATION)
    up = once(sel("modelarts_up", LOCATION), PER_PROJECT)
    failing = f"1 - {once(sel('modelarts_poll_success', LOCATION), PER_ITEM)}"
    pools = (
        f"count by ({PER_POOL}) ({sel(JOBS, LOCATION)} or {sel('modelarts_pool_info', LOCATION)})"
    )
    red, orange = thresholds("green", (1, "red")), thresholds("green", (1, "orange"))

    def fleet_stat(title: str, description: str, expr: str, steps: Json, legend: str) -> Json:
        return count_stat(title, description, expr, steps, legend=legend, size=(3, 4))

    def column(labels: str, expr: str, ref_id: str) -> Json:
        return target(f"sum by ({labels}) ({expr})", ref_id=ref_id, table=True)

    def by_project(expr: str, ref_id: str) -> Json:
        return column(PER_PROJECT, expr, ref_id)

    def by_pool(expr: str, ref_id: str) -> Json:
        return column(PER_POOL, expr, ref_id)

    def per_project(title: str, description: str, expr: str, size: tuple[int, int]) -> Json:
        return timeseries(
            title,
            description,
            [target(f"sum by ({PER_PROJECT}) ({expr})", "{{project_id}} ({{region}})")],
            size,
        )

    counts = {
        "Value #abnormal": "Abnormal",
        "Value #failed": "Failed (window)",
        "Value #waiting": "Waiting",
    }
    panels = [
        row("Now, across the selected projects"),
        fleet_stat(
            "Projects",
            "Projects the exporters poll (modelarts_up).",
            f"count({up})",
            thresholds("blue"),
            "projects",
        ),
        fleet_stat(
            "Projects unreachable",
            "Projects whose last poll cycle got no answer with accepted credentials on any "
            "exporter (ModelArtsApiUnreachable, ModelArtsAuthenticationFailed).",
            f"sum(1 - {up})",
            red,
            "projects",
        ),
        fleet_stat(
            "Pools",
            "Pools polled or discovered.",
            f"count({pools})",
            thresholds("blue"),
            "pools",
        ),
        fleet_stat(
            "Abnormal jobs",
            "Jobs in status abnormal (ModelArtsJobsAbnormal).",
            f"sum({abnormal})",
            red,
            "jobs",
        ),
        fleet_stat(
            "Failed recently",
            "New failed jobs within the ModelArtsJobsFailed alert's window (default 15 min).",
            f"sum({failed})",
            red,
            "jobs",
        ),
        fleet_stat(
            "Waiting jobs",
            "Jobs queued or pending (ModelArtsJobBacklog when a queue stops moving).",
            f"sum({waiting})",
            orange,
            "jobs",
        ),
        fleet_stat(
            "Specs exhausted",
            "Resource specs with no resources left (ModelArtsAcceleratorSpecExhausted).",
            f"sum({exhausted})",
            orange,
            "specs",
        ),
        fleet_stat(
            "Failing polls",
            "Polled items whose last poll failed on every exporter (ModelArtsPollFailing).",
            f"sum({failing})",
            red,
            "items",
        ),
        table(
            "Projects",
            "One row per project: reachable, credentials accepted, pools, jobs in trouble, "
            "exhausted specs, failing polls and the age of the oldest data. A project opens "
            "the pools overview.",
            [
                target(up, ref_id="up", table=True),
                target(
                    once(sel("modelarts_credentials_refused", LOCATION), PER_PROJECT),
                    ref_id="refused",
                    table=True,
                ),
                target(f"count by ({PER_PROJECT}) ({pools})", ref_id="pools", table=True),
                by_project(abnormal, "abnormal"),
                by_project(failed, "failed"),
                by_project(waiting, "waiting"),
                by_project(exhausted, "exhausted"),
                by_project(failing, "failing"),
                target(
                    f"max by ({PER_PROJECT}) "
                    f"({sel('modelarts:poll_data_age:seconds', LOCATION, not_discovery)})",
                    ref_id="age",
                    table=True,
                ),
            ],
            (24, 6),
            transformations=merged(
                {
                    "region": "region",
                    "project_id": "project_id",
                    "Value #up": "ModelArts",
                    "Value #refused": "Credentials",
                    "Value #pools": "Pools",
                    **counts,
                    "Value #exhausted": "Specs exhausted",
                    "Value #failing": "Failing polls",
                    "Value #age": "Data age",
                },
                ("Time",),
            ),
            overrides=[
                coloured_cells("ModelArts", REACHABLE),
                coloured_cells("Credentials", _REFUSED),
                override("byName", "Data age", {"unit": "s"}),
                override(
                    "byName",
                    "project_id",
                    {"links": [link("Pools of ${__value.raw}", PROJECT_LINK)]},
                ),
            ],
            sort_by="region",
        ),
        table(
            "Pools",
            "One row per pool: its phase (with pool discovery), running, waiting, abnormal and "
            "newly failed jobs, and abnormal nodes. A pool opens it in the pools overview.",
            [
                target(
                    current_phase(sel("modelarts_pool_phase", LOCATION)),
                    ref_id="phase",
                    table=True,
                ),
                by_pool(once(sel(JOBS, LOCATION, 'status="running"'), PER_STATUS), "running"),
                by_pool(waiting, "waiting"),
                by_pool(abnormal, "abnormal"),
                by_pool(failed, "failed"),
                by_pool(sel("modelarts:pool_nodes_abnormal:sum", LOCATION), "nodes"),
            ],
            (24, 8),
            transformations=merged(
                {
                    "region": "region",
                    "project_id": "project_id",
                    "pool": "pool",
                    "phase": "Phase",
                    "Value #running": "Running",
                    **counts,
                    "Value #nodes": "Abnormal nodes",
                },
                ("Time", "Value #phase"),
            ),
            overrides=[
                coloured_cells("Phase", PHASES),
                override(
                    "byName",
                    "pool",
                    {"links": [link("Pool ${__value.raw}", POOL_LINK)]},
                ),
            ],
            sort_by="pool",
        ),
        row("Over time"),
        per_project(
            "Abnormal jobs by project",
            "Abnormal jobs per project (modelarts:pool_jobs_abnormal:sum).",
            abnormal,
            (8, 8),
        ),
        per_project(
            "Failed jobs by project (new in window)",
            "New failed jobs per project within the ModelArtsJobsFailed window "
            "(modelarts:pool_jobs_failed:new).",
            failed,
            (8, 8),
        ),
        per_project(
            "Waiting jobs by project",
            "Queued and pending jobs per project (modelarts:pool_jobs_waiting:sum).",
            waiting,
            (8, 8),
        ),
        per_project(
            "Specs exhausted by project",
            "Resource specs with no resources left, per project "
            "(modelarts:specs_no_resource:count).",
            exhausted,
            (12, 8),
        ),
        timeseries(
            "Poll success by project",
            "Share of each project's polled items whose last poll succeeded on some exporter "
            "(modelarts:poll_success:ratio), the lowest of its APIs.",
            [
                target(
                    f"min by ({PER_PROJECT}) ({sel('modelarts:poll_success:ratio', LOCATION)})",
                    "{{project_id}} ({{region}})",
                )
            ],
            (12, 8),
            unit="percentunit",
        ),
    ]
    return dashboard(
        "modelarts-fleet",
        "ModelArts / Fleet overview",
        "Every ModelArts project and pool the exporters poll, across regions: jobs in trouble, "
        "exhausted specs and polling health at a glance (modelarts-exporter).",
        [],
        panels,
        annotations=[alerts_annotation()],
    )
