"""Generate the Grafana dashboards of ``grafana/dashboards/`` from code.

    python grafana/generate.py            write the JSON files
    python grafana/generate.py --check    exit 1 if the committed files differ from the output

Four dashboards, linked to each other by their common tag:

- ``modelarts-fleet``: every project and pool at a glance, across regions: abnormal, failed
  and waiting jobs, exhausted specs, polling health; a pool's row links to its pools view;
- ``modelarts-pools``: jobs per pool, job type and status, now and over time (live states
  apart from the cumulative ones), and the pools themselves (phase, nodes) from discovery;
- ``modelarts-capacity``: resource specs and which of them have run out;
- ``modelarts-exporter``: the exporter's own health (polls, API calls, errors, process).

Every query reads the data source chosen in the ``datasource`` variable and filters by the
dashboard's other variables, each named after the label it matches; every dashboard has
``region`` and ``project_id``, several values or All. Series of a pool or project are counted
once however many exporter replicas serve them (``once``), as the recording rules do. The
JSON is the Grafana 10 model (schemaVersion 39) as "Export for sharing externally" writes
it, ready to import.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "DASHBOARDS",
    "GRAFANA_MACROS",
    "OUT_DIR",
    "SCHEMA_VERSION",
    "build_all",
    "capacity_dashboard",
    "expand",
    "exporter_dashboard",
    "fleet_dashboard",
    "main",
    "panel_queries",
    "pools_dashboard",
    "render",
    "variable_queries",
]

Json = dict[str, Any]
Key = TypeVar("Key", int, str)

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39
TAG = "modelarts"
GRID_WIDTH = 24
ALL = ".*"
"""What an "All" selection of a multi-value variable stands for in a ``=~`` matcher."""

GRAFANA_MACROS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
"""Grafana's built-in variables the dashboards use, with the values ``expand`` gives them."""
LOCATION = ("region", "project_id")
"""The labels, and variables, that say where a series is: every dashboard filters by both."""

_DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}
_PANEL_NAMES = {
    "stat": "Stat",
    "state-timeline": "State timeline",
    "table": "Table",
    "timeseries": "Time series",
}

# --- building blocks -------------------------------------------------------------------


def datasource() -> Json:
    """The data source reference of every panel and target: the ``datasource`` variable."""
    return dict(_DATASOURCE)


def sel(metric: str, labels: Sequence[str], *extra: str) -> str:
    """``metric{label=~"$label", ...}``: one matcher per variable-bound label, then ``extra``."""
    matchers = [f'{label}=~"${label}"' for label in labels]
    return f"{metric}{{{', '.join([*matchers, *extra])}}}"


def once(selector: str, labels: str) -> str:
    """``selector``'s series counted once across exporter replicas, as the recording rules
    count them: ``max by (labels)``, dropping instance and job. Two replicas of an HA pair,
    or two shards while a StatefulSet rolls, serve the same pool; a plain sum would double."""
    return f"max by ({labels}) ({selector})"


def target(expr: str, legend: str = "", *, ref_id: str = "", table: bool = False) -> Json:
    """A Prometheus query; ``table`` makes it an instant query shaped as a table."""
    return {
        "datasource": datasource(),
        "editorMode": "code",
        "exemplar": False,
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": table,
        "legendFormat": legend,
        "range": not table,
        "refId": ref_id,
    }


def thresholds(base: str, *steps: tuple[float, str]) -> Json:
    """Absolute thresholds: ``base`` colour below the first step, then each step's colour."""
    return {
        "mode": "absolute",
        "steps": [
            {"color": base, "value": None},
            *({"color": color, "value": value} for value, color in steps),
        ],
    }


def value_mappings(texts: Mapping[Key, tuple[str, str]]) -> list[Json]:
    """One value mapping: each value (a number, or a text such as a phase) shown as its
    text, in its colour."""
    options = {
        str(value): {"color": color, "index": index, "text": text}
        for index, (value, (text, color)) in enumerate(sorted(texts.items()))
    }
    return [{"options": options, "type": "value"}]


def fixed_color(color: str) -> Json:
    """A single named colour for a field."""
    return {"fixedColor": color, "mode": "fixed"}


def override(matcher: str, pattern: str, properties: dict[str, Any]) -> Json:
    """A field override: ``properties`` applied to the fields ``matcher`` selects."""
    return {
        "matcher": {"id": matcher, "options": pattern},
        "properties": [{"id": key, "value": value} for key, value in properties.items()],
    }


def coloured_cells(column: str, texts: Mapping[Key, tuple[str, str]]) -> Json:
    """A table column whose cells show each value as its text, on its colour."""
    return override(
        "byName",
        column,
        {"custom.cellOptions": {"type": "color-background"}, "mappings": value_mappings(texts)},
    )


def highlight(suffix: str, color: str) -> Json:
    """Series whose name ends in ``suffix``: drawn thicker in ``color``."""
    return override(
        "byRegexp", f"/ {suffix}$/", {"color": fixed_color(color), "custom.lineWidth": 3}
    )


def reference_line(name: str, color: str) -> Json:
    """A series that is a limit rather than data: a dashed line in ``color``, no fill."""
    return override(
        "byName",
        name,
        {
            "color": fixed_color(color),
            "custom.fillOpacity": 0,
            "custom.lineStyle": {"dash": [10, 10], "fill": "dash"},
        },
    )


def field_config(
    *,
    unit: str = "short",
    steps: Json | None = None,
    mappings: list[Json] | None = None,
    color: Json | None = None,
    custom: Json | None = None,
    overrides: list[Json] | None = None,
    decimals: int | None = None,
    no_value: str | None = None,
) -> Json:
    """``fieldConfig`` with the defaults every field of the panel shares."""
    defaults: Json = {
        "color": color or {"mode": "palette-classic"},
        "custom": custom or {},
        "mappings": mappings or [],
        "thresholds": steps or thresholds("green"),
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if no_value is not None:
        defaults["noValue"] = no_value
    return {"defaults": defaults, "overrides": overrides or []}


def panel(
    kind: str,
    title: str,
    description: str,
    targets: Sequence[Json],
    size: tuple[int, int],
    *,
    fields: Json | None = None,
    options: Json | None = None,
    transformations: Sequence[Json] = (),
) -> Json:
    """A panel of ``size`` (width, height); ``arrange`` gives it its id and position."""
    width, height = size
    return {
        "datasource": datasource(),
        "description": description,
        "fieldConfig": fields or field_config(),
        "gridPos": {"h": height, "w": width, "x": 0, "y": 0},
        "id": 0,
        "options": options or {},
        "targets": [
            {**t, "refId": t["refId"] or chr(ord("A") + index)} for index, t in enumerate(targets)
        ],
        "title": title,
        "transformations": list(transformations),
        "type": kind,
    }


def stat(
    title: str,
    description: str,
    targets: Sequence[Json],
    size: tuple[int, int],
    *,
    fields: Json,
    color_mode: str = "background",
) -> Json:
    """A stat panel showing each series' last value."""
    options = {
        "colorMode": color_mode,
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": "auto",
    }
    return panel("stat", title, description, targets, size, fields=fields, options=options)


def timeseries(
    title: str,
    description: str,
    targets: Sequence[Json],
    size: tuple[int, int],
    *,
    unit: str = "short",
    overrides: list[Json] | None = None,
    bars: bool = False,
    stacked: bool = False,
    no_value: str | None = None,
) -> Json:
    """A time series panel with a table legend (last and max value of each series).

    Bars are always stacked; ``stacked`` stacks lines too, as filled areas.
    """
    custom = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else 40 if stacked else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if bars or stacked else "none"},
    }
    options = {
        "legend": {
            "calcs": ["lastNotNull", "max"],
            "displayMode": "table",
            "placement": "bottom",
            "showLegend": True,
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    fields = field_config(unit=unit, custom=custom, overrides=overrides, no_value=no_value)
    return panel("timeseries", title, description, targets, size, fields=fields, options=options)


def state_timeline(
    title: str,
    description: str,
    targets: Sequence[Json],
    size: tuple[int, int],
    *,
    states: dict[int, tuple[str, str]],
) -> Json:
    """A state timeline: one lane per series, coloured by the value mapping ``states``."""
    fields = field_config(
        color={"mode": "thresholds"},
        custom={"fillOpacity": 80, "lineWidth": 0},
        mappings=value_mappings(states),
    )
    options = {
        "alignValue": "left",
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "mergeValues": True,
        "rowHeight": 0.9,
        "showValue": "never",
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return panel(
        "state-timeline", title, description, targets, size, fields=fields, options=options
    )


def table(
    title: str,
    description: str,
    targets: Sequence[Json],
    size: tuple[int, int],
    *,
    transformations: Sequence[Json],
    overrides: list[Json] | None = None,
    sort_by: str | None = None,
) -> Json:
    """A table of instant query results, shaped by ``transformations``."""
    options: Json = {
        "cellHeight": "sm",
        "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
        "showHeader": True,
        "sortBy": [{"desc": False, "displayName": sort_by}] if sort_by else [],
    }
    fields = field_config(
        color={"mode": "thresholds"},
        custom={"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False},
        overrides=overrides,
    )
    return panel(
        "table",
        title,
        description,
        targets,
        size,
        fields=fields,
        options=options,
        transformations=transformations,
    )


def organize(columns: dict[str, str], hide: Sequence[str]) -> Json:
    """The ``organize`` transformation: ``columns`` (field → header) in order, ``hide`` hidden."""
    return {
        "id": "organize",
        "options": {
            "excludeByName": dict.fromkeys(hide, True),
            "indexByName": {name: index for index, name in enumerate(columns)},
            "renameByName": columns,
        },
    }


def merged(columns: dict[str, str], hide: Sequence[str]) -> list[Json]:
    """Transformations of a table of several instant queries: one row per label set
    (``merge``), then ``organize``."""
    return [{"id": "merge", "options": {}}, organize(columns, hide)]


def row(title: str) -> Json:
    """An expanded row: a full-width heading over the panels that follow it."""
    return {
        "collapsed": False,
        "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": 0},
        "id": 0,
        "panels": [],
        "title": title,
        "type": "row",
    }


def arrange(panels: Sequence[Json]) -> list[Json]:
    """Number the panels from 1 and lay them out left to right, top to bottom.

    A panel that does not fit in what is left of the line starts a new one below the
    tallest panel of the line; a row always starts a new line and fills it.
    """
    placed: list[Json] = []
    x = y = line_height = 0
    for number, item in enumerate(panels, start=1):
        width, height = item["gridPos"]["w"], item["gridPos"]["h"]
        if item["type"] == "row" or x + width > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        placed.append({**item, "gridPos": {"h": height, "w": width, "x": x, "y": y}, "id": number})
        x, line_height = x + width, max(line_height, height)
    return placed


def datasource_variable() -> Json:
    """The ``datasource`` variable: any Prometheus data source, picked on the dashboard."""
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def query_variable(name: str, label: str, query: str, *, multi: bool = False) -> Json:
    """A variable filled by ``label_values(...)``; ``multi`` allows several values and All."""
    variable: Json = {
        "current": {},
        "datasource": datasource(),
        "definition": query,
        "hide": 0,
        "includeAll": multi,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": {
            "qryType": 1,
            "query": query,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }
    if multi:
        variable["allValue"] = ALL
    return variable


def location_variables() -> list[Json]:
    """``region`` and ``project_id``, several values or All, from ``modelarts_up`` (served for
    every configured project, whatever else fails); the projects offered are the regions'."""
    return [
        query_variable("region", "Region", "label_values(modelarts_up, region)", multi=True),
        query_variable(
            "project_id",
            "Project",
            f"label_values({sel('modelarts_up', ['region'])}, project_id)",
            multi=True,
        ),
    ]


def alerts_annotation(*extra: str) -> Json:
    """Firing ModelArts alerts of the selected projects (and ``extra`` matchers), as
    annotations: a page and the graph it is about line up."""
    matchers = ", ".join([*(f'{label}=~"${label}"' for label in LOCATION), *extra])
    return {
        "datasource": datasource(),
        "enable": True,
        "expr": f'ALERTS{{alertstate="firing", alertname=~"ModelArts.+", {matchers}}}',
        "hide": False,
        "iconColor": "red",
        "name": "ModelArts alerts",
        "step": "1m",
        "tagKeys": "severity",
        "textFormat": "{{pool}} {{project_id}} ({{region}})",
        "titleFormat": "{{alertname}}",
        "useValueForTime": False,
    }


def _plugins(panels: Sequence[Json]) -> Iterator[Json]:
    for kind in sorted({p["type"] for p in panels if p["type"] != "row"}):
        yield {"id": kind, "name": _PANEL_NAMES[kind], "type": "panel", "version": ""}


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: Sequence[Json],
    panels: Sequence[Json],
    annotations: Sequence[Json] = (),
) -> Json:
    """A whole dashboard, import-ready, linked to the other ModelArts dashboards by tag;
    its variables follow the data source, region and project ones."""
    laid_out = arrange(panels)
    return {
        "__elements": {},
        "__inputs": [],
        "__requires": [
            {"id": "grafana", "name": "Grafana", "type": "grafana", "version": "10.0.0"},
            {"id": "prometheus", "name": "Prometheus", "type": "datasource", "version": "1.0.0"},
            *_plugins(laid_out),
        ],
        "annotations": {"list": list(annotations)},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": False,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": [TAG],
                "targetBlank": False,
                "title": "ModelArts",
                "tooltip": "",
                "type": "dashboards",
                "url": "",
            }
        ],
        "liveNow": False,
        "panels": laid_out,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": [TAG],
        "templating": {"list": [datasource_variable(), *location_variables(), *variables]},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# --- the dashboards --------------------------------------------------------------------

_AVAILABILITY = {0: ("available", "green"), 1: ("exhausted", "red")}
_PHASES = {
    "Creating": ("Creating", "blue"),
    "Running": ("Running", "green"),
    "Abnormal": ("Abnormal", "orange"),
    "Deleting": ("Deleting", "purple"),
    "Error": ("Error", "red"),
}
_REACHABLE = {0: ("down", "red"), 1: ("up", "green")}
_REFUSED = {0: ("accepted", "green"), 1: ("refused", "red")}

LIVE_STATUSES = ("queue", "pending", "creating", "running", "abnormal", "terminating")
"""Job statuses a job is in while it lives: their counts rise and fall."""
FINISHED_STATUSES = ("completed", "terminated", "failed")
"""Job statuses a job ends in: their counts only grow, until jobs are deleted."""

JOBS = "modelarts_pool_jobs"
PER_STATUS = "project_id, region, pool, type, status"
PER_POOL = "project_id, region, pool"
PER_PROJECT = "project_id, region"
PER_ITEM = "project_id, region, api, target"
PER_SPEC = "project_id, region, job_type, spec_code"
# A pool comes from its job statistics and, with discovery on, from ListPools: a pool being
# created or in Error may have no job series yet.
POOL_SERIES = '__name__=~"modelarts_pool_jobs|modelarts_pool_info"'
_POOLS_URL = (
    "/d/modelarts-pools/modelarts-pools-overview?${__url_time_range}"
    "&var-datasource=${datasource}&var-region=${__data.fields.region}"
)
PROJECT_LINK = f"{_POOLS_URL}&var-project_id=${{__value.raw}}"
"""A project's cell → the pools overview of that project (same data source and time)."""
POOL_LINK = f"{_POOLS_URL}&var-project_id=${{__data.fields.project_id}}&var-pool=${{__value.raw}}"
"""A pool's cell → the pools overview of that pool."""


def count_stat(
    title: str,
    description: str,
    expr: str,
    steps: Json,
    *,
    legend: str,
    size: tuple[int, int] = (6, 4),
) -> Json:
    """A whole number, coloured by ``steps``."""
    return stat(
        title,
        description,
        [target(expr, legend)],
        size,
        fields=field_config(steps=steps, decimals=0, color={"mode": "thresholds"}),
    )


def statuses(names: Sequence[str]) -> str:
    """A ``status=~`` matcher for ``names``."""
    return f'status=~"{"|".join(names)}"'


def current_phase(selector: str) -> str:
    """One series per pool, its ``phase`` label the pool's phase: replicas that polled
    ListPools on either side of a change disagree for a while, and a table or a join needs
    one answer, so one of their phases is taken."""
    return f"topk by ({PER_POOL}) (1, max by ({PER_POOL}, phase) ({selector} == 1))"


def link(title: str, url: str) -> Json:
    """A data link of a table column: a click on a cell opens ``url`` (same tab)."""
    return {"targetBlank": False, "title": title, "url": url}


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
            overrides=[coloured_cells("Phase", _PHASES)],
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


def capacity_dashboard() -> Json:
    """Resource specs: what each offers, and which have run out (now and over time)."""
    bound = (*LOCATION, "job_type")
    spec = "modelarts_spec_no_resource"

    def spec_column(metric: str, ref_id: str, extra_label: str = "") -> Json:
        return target(
            f"max by ({PER_SPEC}{extra_label}) ({sel(metric, bound)})", ref_id=ref_id, table=True
        )

    variables = [
        query_variable(
            "job_type", "Job type", f"label_values({sel(spec, LOCATION)}, job_type)", multi=True
        ),
    ]
    columns = {
        "spec_code": "Spec code",
        "job_type": "Job type",
        "region": "Region",
        "project_id": "Project",
        "gpu_type": "GPU type",
        "Value #gpus": "GPUs/NPUs",
        "Value #cores": "CPU cores",
        "Value #memory": "Memory",
        "Value #max_nodes": "Max nodes",
        "Value #no_resource": "No resource",
    }
    specs = once(sel(spec, bound), PER_SPEC)
    panels = [
        row("Now"),
        count_stat(
            "Specs exhausted",
            "Specs for which ModelArts reports no resources left (recording rule "
            "modelarts:specs_no_resource:count).",
            f"sum({sel('modelarts:specs_no_resource:count', bound)})",
            thresholds("green", (1, "orange")),
            legend="specs",
        ),
        count_stat(
            "Accelerator specs exhausted",
            "GPU/NPU specs with no resources left: new jobs on them cannot start. The "
            "ModelArtsAcceleratorSpecExhausted alert fires after 15 minutes.",
            f"sum({specs} * on ({PER_SPEC}) "
            f"({once(sel('modelarts_spec_gpus', bound), PER_SPEC)} > bool 0))",
            thresholds("green", (1, "red")),
            legend="specs",
        ),
        count_stat(
            "Specs available",
            "Specs that still have resources.",
            f"sum(1 - {specs})",
            thresholds("blue"),
            legend="specs",
        ),
        count_stat(
            "Specs offered",
            "Specs ModelArts lists for the selected job types (spec_total_count).",
            f"sum({once(sel('modelarts_specs', bound), 'project_id, region, job_type')})",
            thresholds("blue"),
            legend="specs",
        ),
        table(
            "Resource specs",
            "Every spec of the selected job types: accelerators, cores and memory per node, "
            "the node limit, and whether ModelArts has run out of it.",
            [
                spec_column("modelarts_spec_info", "info", ", gpu_type"),
                spec_column("modelarts_spec_gpus", "gpus"),
                spec_column("modelarts_spec_cpu_cores", "cores"),
                spec_column("modelarts_spec_memory_bytes", "memory"),
                spec_column("modelarts_spec_max_nodes", "max_nodes"),
                spec_column(spec, "no_resource"),
            ],
            (24, 10),
            transformations=merged(columns, ("Time", "Value #info")),
            overrides=[
                override("byName", "Memory", {"unit": "bytes"}),
                override(
                    "byName",
                    "GPU type",
                    {
                        "mappings": [
                            {
                                "options": {"match": "empty", "result": {"text": "-"}},
                                "type": "special",
                            }
                        ]
                    },
                ),
                coloured_cells("No resource", _AVAILABILITY),
            ],
            sort_by="Spec code",
        ),
        row("History"),
        state_timeline(
            "History of no_resource flips",
            "When each spec ran out (red) and came back (green).",
            [
                target(
                    f"max by ({PER_SPEC}) ({sel(spec, bound)})",
                    "{{spec_code}} ({{job_type}}, {{region}})",
                )
            ],
            (24, 12),
            states=_AVAILABILITY,
        ),
    ]
    return dashboard(
        "modelarts-capacity",
        "ModelArts / Capacity",
        "ModelArts job resource specs and their availability (modelarts-exporter).",
        variables,
        panels,
    )


def exporter_dashboard() -> Json:
    """The exporter's own health: reachability, polls, API calls, errors and the process.
    What is about a project or an item is counted once across replicas; what a process
    does (cycles, requests, memory) is per exporter, summed or shown per instance."""
    item = ("instance", *LOCATION)
    process = ("instance",)
    interval = "modelarts_exporter_poll_interval_seconds"
    success, last_success = (
        "modelarts_poll_success",
        "modelarts_poll_last_success_timestamp_seconds",
    )
    variables = [
        query_variable(
            "instance",
            "Exporter",
            "label_values(modelarts_exporter_build_info, instance)",
            multi=True,
        ),
    ]
    per_item = "{{target}} ({{api}}) {{project_id}}"
    discovery, not_discovery = 'api="pools"', 'api!="pools"'
    panels = [
        row("Now"),
        stat(
            "ModelArts reachable",
            "Per project: whether the last poll cycle of any selected exporter got an answer "
            "from ModelArts with accepted credentials (modelarts_up).",
            [target(once(sel("modelarts_up", item), PER_PROJECT), "{{project_id}} ({{region}})")],
            (8, 5),
            fields=field_config(
                color={"mode": "thresholds"},
                steps=thresholds("red", (1, "green")),
                mappings=value_mappings(_REACHABLE),
            ),
        ),
        stat(
            "Pool discovery",
            "Per project and workspace: whether the last pool discovery (ListPools, "
            'api="pools") succeeded. A failing discovery is retried every cycle; meanwhile the '
            "pools keep their last data, for 15 minutes with the defaults. No value: discovery "
            "is not enabled.",
            [
                target(
                    once(sel(success, item, discovery), PER_ITEM),
                    "{{project_id}} / {{target}}",
                )
            ],
            (8, 5),
            fields=field_config(
                color={"mode": "thresholds"},
                steps=thresholds("red", (1, "green")),
                mappings=value_mappings({0: ("failing", "red"), 1: ("ok", "green")}),
                no_value="off",
            ),
        ),
        count_stat(
            "Failing polls",
            "Polled items (pools, job types, pool discovery) whose last poll failed on every "
            "selected exporter.",
            f"sum(1 - {once(sel(success, item), PER_ITEM)})",
            thresholds("green", (1, "red")),
            legend="items",
            size=(4, 5),
        ),
        stat(
            "Oldest data",
            "Age of the oldest item's data on the freshest exporter. Orange from 120 s, red "
            "from 180 s: 2 and 3 poll intervals at the default poll_interval of 60 s (at 3 the "
            "data leaves /metrics). For another interval, see the dashed lines of 'Data age by "
            "item'. Pool discovery is left out: it is refreshed only every "
            "discovery.refresh_interval (default 5 min).",
            [
                target(
                    f"max(time() - {once(sel(last_success, item, not_discovery), PER_ITEM)})",
                    "oldest",
                )
            ],
            (4, 5),
            fields=field_config(
                unit="s",
                color={"mode": "thresholds"},
                steps=thresholds("green", (120, "orange"), (180, "red")),
            ),
        ),
        stat(
            "Skipped cycles (1h)",
            "Per project: poll cycles skipped in the last hour because the project's previous "
            "cycle overran the interval (raise poll_interval or max_concurrency), summed over "
            "the selected exporters: each runs its own poll loop per project.",
            [
                target(
                    f"sum by ({PER_PROJECT}) (increase("
                    f"{sel('modelarts_exporter_skipped_cycles_total', item)}[1h]))",
                    "{{project_id}} ({{region}})",
                )
            ],
            (12, 4),
            fields=field_config(
                color={"mode": "thresholds"}, steps=thresholds("green", (1, "orange")), decimals=0
            ),
        ),
        stat(
            "Poll cycles (1h)",
            "Per project: poll cycles completed in the last hour, summed over the selected "
            "exporters.",
            [
                target(
                    f"sum by ({PER_PROJECT}) (increase("
                    f"{sel('modelarts_exporter_poll_cycles_total', item)}[1h]))",
                    "{{project_id}} ({{region}})",
                )
            ],
            (12, 4),
            fields=field_config(color={"mode": "thresholds"}, steps=thresholds("blue"), decimals=0),
            color_mode="value",
        ),
        row("Polls"),
        state_timeline(
            "Poll success by item",
            "Whether the last poll of each pool (workload_statistics) and job type "
            "(resource_specs) succeeded on any selected exporter. A failing item keeps its "
            "last data until stale_after.",
            [target(once(sel(success, item), PER_ITEM), per_item)],
            (24, 8),
            states={0: ("failing", "red"), 1: ("ok", "green")},
        ),
        timeseries(
            "Poll duration by item",
            "Wall time of each item's last poll, retries included; the slowest selected "
            "exporter's.",
            [target(once(sel("modelarts_poll_duration_seconds", item), PER_ITEM), per_item)],
            (12, 8),
            unit="s",
        ),
        timeseries(
            "Data age by item",
            "Seconds since each item's last successful poll on any selected exporter. Dashed: "
            "2 and 3 poll intervals; past 3 (stale_after by default) the item's series leave "
            "/metrics. Pool discovery (pools) is refreshed every discovery.refresh_interval "
            "(default 5 min), so its age passes the lines by design; its data leaves as many "
            "refresh intervals late.",
            [
                target(f"time() - {once(sel(last_success, item), PER_ITEM)}", per_item),
                target(f"2 * max({sel(interval, process)})", "2x poll interval"),
                target(f"3 * max({sel(interval, process)})", "3x poll interval"),
            ],
            (12, 8),
            unit="s",
            overrides=[
                reference_line("2x poll interval", "orange"),
                reference_line("3x poll interval", "red"),
            ],
        ),
        row("ModelArts API"),
        timeseries(
            "API requests by API and HTTP code",
            "Requests per second the selected exporters send to ModelArts, by API and response "
            "status ('none': no response came).",
            [
                target(
                    "sum by (api, code) (rate("
                    f"{sel('modelarts_api_requests_total', item)}[$__rate_interval]))",
                    "{{api}} {{code}}",
                )
            ],
            (12, 8),
            unit="reqps",
        ),
        timeseries(
            "Failed polls per minute by error code",
            "Failed polls per minute, by API and ModelArts error code (or the exporter's word "
            "for the failure, e.g. timeout), per project as the exporter failing most often "
            "sees them (replicas polling the same item are not added up): a rate, so the "
            "value does not change with the zoom. At one poll a minute, 1/min is one item "
            "failing every time. The error codes are explained in docs/troubleshooting.md.",
            [
                target(
                    "60 * sum by (api, error_code) (max by (project_id, region, api, error_code) "
                    f"(rate({sel('modelarts_poll_errors_total', item)}[$__rate_interval])))",
                    "{{api}} {{error_code}}",
                )
            ],
            (12, 8),
            unit="cpm",
            no_value="no errors",
        ),
        row("Exporter"),
        timeseries(
            "Poll cycle duration vs interval",
            "Wall time of each project's last complete poll cycle against the configured "
            "interval (dashed). Each project has its own poll loop; a cycle longer than the "
            "interval makes that project's next ticks be skipped.",
            [
                target(
                    sel("modelarts_exporter_poll_cycle_duration_seconds", item),
                    "{{project_id}} on {{instance}}",
                ),
                target(sel(interval, process), "{{instance}} interval"),
            ],
            (8, 8),
            unit="s",
            overrides=[
                override(
                    "byRegexp",
                    "/ interval$/",
                    {
                        "color": fixed_color("red"),
                        "custom.fillOpacity": 0,
                        "custom.lineStyle": {"dash": [10, 10], "fill": "dash"},
                    },
                )
            ],
        ),
        timeseries(
            "Resident memory",
            "Resident set size of the exporter process.",
            [
                target(
                    f"{sel('process_resident_memory_bytes', process)} "
                    f"and on (instance, job) {sel('modelarts_exporter_build_info', process)}",
                    "{{instance}}",
                )
            ],
            (8, 8),
            unit="bytes",
        ),
        table(
            "Build info",
            "Version of each exporter and of the Python running it.",
            [target(sel("modelarts_exporter_build_info", process), table=True)],
            (8, 8),
            transformations=[
                organize(
                    {
                        "instance": "Instance",
                        "job": "Job",
                        "version": "Version",
                        "python_version": "Python",
                    },
                    ("Time", "__name__", "Value"),
                )
            ],
            sort_by="Instance",
        ),
    ]
    return dashboard(
        "modelarts-exporter",
        "ModelArts / Exporter health",
        "Health of modelarts-exporter: ModelArts reachability, polls, API requests, errors "
        "and the exporter process.",
        variables,
        panels,
    )


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
                coloured_cells("ModelArts", _REACHABLE),
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
                coloured_cells("Phase", _PHASES),
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


DASHBOARDS = {
    "modelarts-fleet.json": fleet_dashboard,
    "modelarts-pools.json": pools_dashboard,
    "modelarts-capacity.json": capacity_dashboard,
    "modelarts-exporter.json": exporter_dashboard,
}
"""File name under ``grafana/dashboards/`` → the function building that dashboard."""


# --- output ----------------------------------------------------------------------------


def render(board: Json) -> str:
    """The file content of a dashboard: indented JSON and a trailing newline."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def build_all() -> dict[str, str]:
    """File name → file content of every dashboard."""
    return {name: render(build()) for name, build in DASHBOARDS.items()}


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"label_values\((?:(.+),\s*)?(\w+)\)")


def _panels(panels: Sequence[Json]) -> Iterator[Json]:
    for item in panels:
        yield item
        yield from _panels(item.get("panels", []))


def expand(expr: str, dashboard: Json, variables: Mapping[str, str]) -> str:
    """``expr`` with ``$var`` and ``${var}`` replaced by ``variables[var]``; a variable of
    ``dashboard`` missing from ``variables`` becomes ``.*`` (all values: every variable is
    matched with ``=~``). Grafana's ``$__rate_interval``, ``$__interval`` and ``$__range``
    become 1m, 15s and 5m. An unknown variable raises ``KeyError``."""
    defined = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    values = {**dict.fromkeys(defined, ALL), **variables, **GRAFANA_MACROS}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"undefined variable ${name} in {match.string!r}")
        return values[name]

    return _VARIABLE.sub(substitute, expr)


def panel_queries(dashboard: Json, variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """(panel title, query) for every target of every panel, rows' panels included, with
    the variables substituted as ``expand`` does."""
    return [
        (item["title"], expand(t["expr"], dashboard, variables))
        for item in _panels(dashboard.get("panels", []))
        for t in item.get("targets", [])
        if "expr" in t
    ]


def variable_queries(dashboard: Json, variables: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(variable name, series selector, label) of every ``label_values(selector, label)``
    variable, the others substituted as ``expand`` does ("" for a selector left out)."""
    found = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        match = _LABEL_VALUES.fullmatch(variable["definition"])
        if match is None:
            raise ValueError(f"variable {variable['name']}: not label_values(...)")
        selector = expand(match.group(1) or "", dashboard, variables)
        found.append((variable["name"], selector, match.group(2)))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboards, or with ``--check`` report those that differ; exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of date"
    )
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir
    files = build_all()
    if args.check:
        stale = [
            name
            for name, content in files.items()
            if not (out_dir / name).is_file()
            or (out_dir / name).read_text(encoding="utf-8") != content
        ]
        for name in stale:
            print(
                f"{out_dir / name} is out of date: run python grafana/generate.py", file=sys.stderr
            )
        return 1 if stale else 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (out_dir / name).write_text(content, encoding="utf-8")
        print(f"wrote {out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
