"""A whole dashboard around its panels: their layout on the grid, the variables every
dashboard has (data source, region, project), the alerts annotation, and the import-ready
JSON with its links to the other ModelArts dashboards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from panels import GRID_WIDTH, Json, datasource, sel
from queries import ALL

__all__ = [
    "LOCATION",
    "SCHEMA_VERSION",
    "TAG",
    "alerts_annotation",
    "arrange",
    "dashboard",
    "datasource_variable",
    "location_variables",
    "query_variable",
]

SCHEMA_VERSION = 39
TAG = "modelarts"
LOCATION = ("region", "project_id")
"""The labels, and variables, that say where a series is: every dashboard filters by both."""

_PANEL_NAMES = {
    "stat": "Stat",
    "state-timeline": "State timeline",
    "table": "Table",
    "timeseries": "Time series",
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
