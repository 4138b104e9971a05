"""The ``modelarts-pools`` dashboard: jobs per pool, job type and status, now and over
time (live states apart from the cumulative ones), and the pools themselves (phase,
nodes) from discovery.
"""

from __future__ import annotations

from collections.abc import Sequence

from board import LOCATION, alerts_annotation, dashboard, query_variable
from panels import (
    Json,
    coloured_cells,
    count_stat,
    highlight,
    once,
    organize,
    row,
    sel,
    table,
    target,
    thresholds,
    timeseries,
)
from series import JOBS, PER_POOL, PER_STATUS, PHASES, current_phase

__all__ = ["FINISHED_STATUSES", "LIVE_STATUSES", "pools_dashboard"]

LIVE_STATUSES = ("queue", "pending", "creating", "running", "abnormal", "terminating")
"""Job statuses a job is in while it lives: their counts rise and fall."""
FINISHED_STATUSES = ("completed", "terminated", "failed")
"""Job statuses a job ends in: their counts only grow, until jobs are deleted."""

# A pool comes from its job statistics and, with discovery on, from ListPools: a pool being
# created or in Error may have no job series yet.
POOL_SERIES = '__name__=~"modelarts_pool_jobs|modelarts_pool_info"'


def statuses(names: Sequence[str]) -> str:
    """A ``status=~`` matcher for ``names``."""
    return f'status=~"{"|".join(names)}"'


def pools_dashboard() -> Json:
    """Jobs per pool, job type and status: current totals, history (live states apart from the
    cumulative ones), a pool-by-status table; then the pools themselves (phase and nodes)."""
    bound = (*LOCATION, "pool", "type")
    per_pool = (*LOCATION, "pool")
    phase, nodes, in_service = "modelarts_pool_phase", "modelarts_pool_nodes", 'phase="Running"'
    running, waiting, abnormal = 'status="running"', 'status=~"queue|pending"', 'status="abnormal"'

    def total(status: str) -> str:
        return f"sum({once(sel(JOBS, bound, status), PER_STATUS)})"

    variables = [
        query_variable(
            "pool", "Pool", f"label_values({sel('', LOCATION, POOL_SERIES)}, pool)", multi=True
        ),
        query_variable(
            "type", "Job type", f"label_values({sel(JOBS, per_pool)}, type)", multi=True
        ),
    ]
    panels = [
        row("Now"),
        count_stat(
            "Running jobs",
            "Jobs in status running, in the selected pools and job types.",
            total(running),
            thresholds("blue"),
            legend="jobs",
        ),
        count_stat(
            "Waiting jobs (queued + pending)",
            "Jobs waiting for resources: status queue or pending. Orange when any wait.",
            total(waiting),
            thresholds("green", (1, "orange")),
            legend="jobs",
        ),
        count_stat(
            "Abnormal jobs",
            "Jobs in status abnormal. Red when any; the ModelArtsJobsAbnormal alert fires "
            "after 15 minutes (its default).",
            total(abnormal),
            thresholds("green", (1, "red")),
            legend="jobs",
        ),
        count_stat(
            "Failed recently",
            "New failed jobs within the ModelArtsJobsFailed alert's window (default 15 minutes; "
            "recording rule modelarts:pool_jobs_failed:new; deleting old failed jobs does not "
            "count).",
            f"sum({sel('modelarts:pool_jobs_failed:new', bound)})",
            thresholds("green", (1, "red")),
            legend="jobs",
        ),
        table(
            "Jobs per pool and status",
            "Current jobs per pool (rows) and status (columns), all selected job types "
            "together. An empty cell: the pool reported no such status.",
            [target(f"sum by (pool, status) ({once(sel(JOBS, bound), PER_STATUS)})", table=True)],
            (24, 6),
            transformations=[
                {
                    "id": "groupingToMatrix",
                    "options": {"columnField": "status", "rowField": "pool", "valueField": "Value"},
                },
                organize({"pool\\status": "Pool"}, ()),
            ],
            sort_by="Pool",
        ),
        row("Over time"),
        timeseries(
            "Live jobs by pool and status",
            "Jobs per pool in each live status (queue, pending, creating, running, abnormal, "
            "terminating) over time, for the selected job types. Abnormal is red, queued "
            "orange, pending light orange.",
            [
                target(
                    "sum by (project_id, pool, status) "
                    f"({once(sel(JOBS, bound, statuses(LIVE_STATUSES)), PER_STATUS)})",
                    "{{pool}} {{status}}",
                )
            ],
            (12, 10),
            overrides=[
                highlight("abnormal", "red"),
                highlight("queue", "orange"),
                highlight("pending", "light-orange"),
            ],
        ),
        timeseries(
            "Finished jobs by pool and status (cumulative)",
            "Completed, terminated and failed jobs that ModelArts still lists, per pool: these "
            "counts only grow until jobs are deleted, so they have their own axis. New "
            "failures are 'Failed recently' above. Failed is dark red.",
            [
                target(
                    "sum by (project_id, pool, status) "
                    f"({once(sel(JOBS, bound, statuses(FINISHED_STATUSES)), PER_STATUS)})",
                    "{{pool}} {{status}}",
                )
            ],
            (12, 10),
            overrides=[highlight("failed", "dark-red")],
        ),
        timeseries(
            "Waiting jobs per pool",
            "Queued and pending jobs per pool (recording rule modelarts:pool_jobs_waiting:sum). "
            "The ModelArtsJobBacklog alert fires when a pool's queue has not moved for its window "
            "(default 30 minutes).",
            [
                target(
                    f"sum by (project_id, pool) ({sel('modelarts:pool_jobs_waiting:sum', bound)})",
                    "{{pool}}",
                )
            ],
            (12, 8),
        ),
        timeseries(
            "Abnormal jobs per pool and job type",
            "Abnormal jobs per pool and job type (recording rule "
            "modelarts:pool_jobs_abnormal:sum).",
            [
                target(
                    "sum by (project_id, pool, type) "
                    f"({sel('modelarts:pool_jobs_abnormal:sum', bound)})",
                    "{{pool}} {{type}}",
                )
            ],
            (12, 8),
        ),
        row("Pools"),
        count_stat(
            "Pools not Running",
            "Selected pools whose phase is not Running: Creating, Deleting, Abnormal, Error or "
            "a phase the exporter does not know. The ModelArtsPoolUnhealthy alert fires when a "
            "pool has been Abnormal or Error for 10 minutes. Needs pool discovery.",
            f"sum(1 - {once(sel(phase, per_pool, in_service), PER_POOL)})",
            thresholds("green", (1, "orange")),
            legend="pools",
            size=(6, 7),
        ),
        table(
            "Pools",
            "Every selected pool ListPools returns: its display name, type (Dedicate or "
            "Logical), workspace and current phase. Needs pool discovery.",
            [
                target(
                    f"max by ({PER_POOL}, display_name, pool_type, workspace_id) "
                    f"({sel('modelarts_pool_info', per_pool)}) "
                    f"* on ({PER_POOL}) group_left (phase) " + current_phase(sel(phase, per_pool)),
                    table=True,
                )
            ],
            (18, 7),
            transformations=[
                organize(
                    {
                        "pool": "Pool",
                        "display_name": "Name",
                        "region": "Region",
                        "project_id": "Project",
                        "pool_type": "Type",
                        "workspace_id": "Workspace",
                        "phase": "Phase",
                    },
                    ("Time", "Value"),
                )
            ],
            overrides=[coloured_cells("Phase", PHASES)],
            sort_by="Name",
        ),
        timeseries(
            "Nodes by pool, flavor and state",
            "Nodes of each selected pool per flavor and state, stacked: the top of the stack is "
            "every node the pools have. Abnormal is red, creating blue, deleting purple.",
            [
                target(
                    "sum by (project_id, pool, flavor, state) "
                    f"({once(sel(nodes, per_pool), f'{PER_POOL}, flavor, state')})",
                    "{{pool}} {{flavor}} {{state}}",
                )
            ],
            (12, 8),
            stacked=True,
            overrides=[
                highlight("abnormal", "red"),
                highlight("creating", "blue"),
                highlight("deleting", "purple"),
            ],
        ),
        timeseries(
            "Abnormal nodes per pool and flavor",
            "Abnormal nodes per pool and flavor (recording rule "
            "modelarts:pool_nodes_abnormal:sum). The ModelArtsPoolNodesAbnormal alert fires "
            "after 15 minutes.",
            [
                target(
                    "sum by (project_id, pool, flavor) "
                    f"({sel('modelarts:pool_nodes_abnormal:sum', per_pool)})",
                    "{{pool}} {{flavor}}",
                )
            ],
            (12, 8),
        ),
    ]
    return dashboard(
        "modelarts-pools",
        "ModelArts / Pools overview",
        "Jobs in ModelArts dedicated resource pools by job type and status, and the pools' "
        "phases and nodes (modelarts-exporter).",
        variables,
        panels,
        annotations=[alerts_annotation('pool=~"$pool|"')],
    )
