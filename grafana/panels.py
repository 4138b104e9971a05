"""The building blocks of the dashboards' panels: the data source, PromQL selectors,
Prometheus targets, thresholds, value mappings and overrides, field config, the panel
kinds (stat, time series, state timeline, table), table transformations and rows.

Each returns the plain JSON of the Grafana 10 model; ``board.arrange`` gives the panels
their ids and positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

__all__ = [
    "GRID_WIDTH",
    "Json",
    "coloured_cells",
    "count_stat",
    "datasource",
    "field_config",
    "fixed_color",
    "highlight",
    "merged",
    "once",
    "organize",
    "override",
    "panel",
    "reference_line",
    "row",
    "sel",
    "stat",
    "state_timeline",
    "table",
    "target",
    "thresholds",
    "timeseries",
    "value_mappings",
]

Json = dict[str, Any]
Key = TypeVar("Key", int, str)

GRID_WIDTH = 24

_DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}


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
