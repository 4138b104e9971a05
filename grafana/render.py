"""Draw the Grafana dashboards of ``grafana/dashboards/`` as PNG pictures, from Prometheus.

    python grafana/render.py --prometheus http://127.0.0.1:9090 --out docs/images \\
        [--minutes 30] [--var project_id=...]

Grafana cannot run everywhere, so this draws what it would show, with matplotlib: the panels
laid out from their ``gridPos`` in a dark theme close to Grafana's, each panel's queries sent
to Prometheus (range queries for time series and state timelines, instant queries where a
target says ``instant``), and the panel options the dashboards use (units, thresholds, value
mappings, overrides, legends, stacking, table transformations). It is a picture of the data
and of the layout, not a Grafana screenshot.

Each PNG carries the dashboard title (``Title``) and the JSON list of the titles of the
panels drawn, in order (``Description``); ``png_text`` reads them back with the standard
library only, and the rest of this module imports matplotlib only when it draws.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import queries

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text

__all__ = [
    "Box",
    "Frame",
    "Prometheus",
    "Queries",
    "QueryError",
    "Series",
    "Window",
    "apply_transformations",
    "dashboard_variables",
    "expand",
    "format_value",
    "layout",
    "legend_name",
    "main",
    "png_text",
    "render_dashboard",
    "stat_values",
]

Json = dict[str, Any]
Cell = str | float | None

HERE = Path(__file__).resolve().parent
DASHBOARD_DIR = HERE / "dashboards"
FOOTER = "Rendered from Prometheus queries by grafana/render.py \u2014 not a Grafana screenshot"

# --- theme and geometry (Grafana 10's dark theme, in pixels) ----------------------------

DPI = 100
WIDTH = 1600
GRID_COLUMNS = 24
CELL_HEIGHT, GUTTER = 30, 8
MARGIN = 16
HEADER, FOOTER_HEIGHT = 72, 32
TITLE_HEIGHT = 32

BACKGROUND, PANEL, BORDER = "#111217", "#181b1f", "#2a2d33"
TEXT, TEXT_DIM, GRID = "#ccccdc", "#8e8e9e", "#2a2d33"
LINK, NO_VALUE_BACKGROUND = "#6e9fff", "#22252b"

NAMED_COLORS = {
    "red": "#F2495C", "dark-red": "#C4162A", "semi-dark-red": "#E02F44",
    "light-red": "#FF7383", "super-light-red": "#FFA6B0",
    "orange": "#FF9830", "dark-orange": "#FA6400", "semi-dark-orange": "#FF780A",
    "light-orange": "#FFB357", "super-light-orange": "#FFCB7D",
    "yellow": "#FADE2A", "dark-yellow": "#E0B400", "semi-dark-yellow": "#F2CC0C",
    "light-yellow": "#FFEE52", "super-light-yellow": "#FFF899",
    "green": "#73BF69", "dark-green": "#37872D", "semi-dark-green": "#56A64B",
    "light-green": "#96D98D", "super-light-green": "#C8F2C2",
    "blue": "#5794F2", "dark-blue": "#1F60C4", "semi-dark-blue": "#3274D9",
    "light-blue": "#8AB8FF", "super-light-blue": "#C0D8FF",
    "purple": "#B877D9", "dark-purple": "#8F3BB8", "semi-dark-purple": "#A352CC",
    "light-purple": "#CA95E5", "super-light-purple": "#DEB6F2",
    "text": TEXT, "transparent": "#00000000",
}  # fmt: skip
"""Grafana's named colours (the dark theme's shades)."""

CLASSIC_PALETTE = (
    "#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
    "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477",
    "#B7DBAB", "#F4D598", "#70DBED", "#F9BA8F", "#F29191", "#82B5D8", "#E5A8E2", "#AEA2E0",
)  # fmt: skip
"""The ``palette-classic`` colour scheme: series get these in turn."""


def color(name: str | None, default: str = TEXT) -> str:
    """A Grafana colour name or CSS colour as a matplotlib colour."""
    if not name:
        return default
    return NAMED_COLORS.get(name, name)


def text_on(background: str) -> str:
    """Black or white, whichever reads better on ``background``."""
    from matplotlib.colors import to_rgb

    red, green, blue = (
        c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(background)
    )
    return "#000000" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.5 else "#ffffff"


def points(pixels: float) -> float:
    """A font size or line width in points from pixels at ``DPI``."""
    return pixels * 72 / DPI


# --- the dashboard JSON, and the generator's variable substitution (queries.py) ---------


def dashboard_variables(dashboard: Json, given: Mapping[str, str]) -> dict[str, str]:
    """Every variable of ``dashboard``: ``given`` values, the others All (``queries.ALL``)."""
    all_values = queries.ALL
    defined = [v["name"] for v in dashboard.get("templating", {}).get("list", [])]
    return {**dict.fromkeys(defined, all_values), **given}


def expand(expr: str, variables: Mapping[str, str]) -> str:
    """``expr`` with ``$var``/``${var}`` from ``variables`` and Grafana's macros, as
    ``queries.expand`` substitutes them (an unknown variable raises ``KeyError``)."""
    return queries.expand(expr, {}, variables)


def panel_titles(dashboard: Json) -> list[str]:
    """The titles of the panels drawn, in order: every top-level panel and row (a collapsed
    row's panels are hidden, as in Grafana)."""
    return [str(p.get("title", "")) for p in dashboard.get("panels", [])]


# --- Prometheus -------------------------------------------------------------------------


class QueryError(Exception):
    """A query Prometheus did not answer, or answered with an error."""


@dataclass(frozen=True)
class Series:
    """One series of a query result: its labels and (unix time, value) points."""

    labels: Mapping[str, str]
    points: Sequence[tuple[float, float]]

    def last(self) -> float | None:
        """The last value that is a number (Grafana's ``lastNotNull``)."""
        return next((v for _, v in reversed(self.points) if not math.isnan(v)), None)


@dataclass(frozen=True)
class Window:
    """The time range of the pictures: unix seconds, and the range queries' step."""

    start: float
    end: float
    step: float

    @classmethod
    def last(cls, seconds: float, end: float | None = None, points: int = 300) -> Window:
        """The ``seconds`` before ``end`` (default now), with about ``points`` steps."""
        end = time.time() if end is None else end
        return cls(end - seconds, end, max(1.0, round(seconds / points)))


class Queries(Protocol):
    """What the renderer asks of Prometheus (tests pass canned results)."""

    def range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """``/api/v1/query_range``: every series of ``expr`` between ``start`` and ``end``."""
        ...

    def instant(self, expr: str, at: float) -> list[Series]:
        """``/api/v1/query``: ``expr`` evaluated at ``at``, one point per series."""
        ...


class Prometheus:
    """``Queries`` against a Prometheus server's HTTP API."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {url}")
        self.url, self.timeout = url.rstrip("/"), timeout

    def range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """``/api/v1/query_range``."""
        params = {"query": expr, "start": start, "end": end, "step": step}
        return parse_result(self._get("/api/v1/query_range", params))

    def instant(self, expr: str, at: float) -> list[Series]:
        """``/api/v1/query``."""
        return parse_result(self._get("/api/v1/query", {"query": expr, "time": at}))

    def _get(self, path: str, params: Mapping[str, object]) -> Json:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310
                payload = json.load(response)
        except urllib.error.HTTPError as error:  # Prometheus explains a 4xx in JSON
            try:
                payload = json.loads(error.read() or b"{}")
            except ValueError:
                raise QueryError(f"{url}: {error}") from error
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise QueryError(f"{url}: {error}") from error
        if payload.get("status") != "success":
            raise QueryError(f"{payload.get('errorType', 'error')}: {payload.get('error')}")
        data = payload["data"]
        assert isinstance(data, dict)
        return data


def parse_result(data: Json) -> list[Series]:
    """The series of a query's ``data`` (matrix, vector or scalar), sorted by labels."""
    kind, result = data.get("resultType"), data.get("result", [])
    if kind == "scalar":
        return [Series({}, [(float(result[0]), float(result[1]))])]
    if kind not in ("matrix", "vector"):
        return []
    found = [
        Series(
            item.get("metric", {}),
            [(float(t), float(v)) for t, v in item.get("values", [item.get("value")])],
        )
        for item in result
    ]
    return sorted(found, key=lambda s: sorted(s.labels.items()))


# --- values: units, thresholds, value mappings, overrides -------------------------------


def _auto_decimals(value: float) -> int:
    """Three significant digits, none for a whole number."""
    if value == int(value) or value == 0:
        return 0
    return max(0, 2 - math.floor(math.log10(abs(value))))


def _fixed(value: float, decimals: int | None) -> str:
    if decimals is not None:
        return f"{value:.{decimals}f}"
    text = f"{value:.{_auto_decimals(value)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _scaled(value: float, decimals: int | None, base: float, suffixes: Sequence[str]) -> str:
    """``value`` divided by ``base`` as often as it stays at least 1, with that suffix."""
    index = 0
    while abs(value) >= base and index < len(suffixes) - 1:
        value, index = value / base, index + 1
    return _fixed(value, decimals) + suffixes[index]


def _seconds(value: float, decimals: int | None) -> str:
    magnitude = abs(value)
    if magnitude == 0:
        return "0 s"
    if magnitude < 1:
        return _fixed(value * 1000, decimals) + " ms"
    for limit, size, name in ((60, 1, "s"), (3600, 60, "min"), (86400, 3600, "hour")):
        if magnitude < limit:
            return f"{_fixed(value / size, decimals)} {name}"
    if magnitude < 604800:
        return f"{_fixed(value / 86400, decimals)} day"
    return f"{_fixed(value / 604800, decimals)} week"


_SHORT = ("", " K", " Mil", " Bil", " Tri", " Quadr")
_UNITS: dict[str, Callable[[float, int | None], str]] = {
    "none": _fixed,
    "short": lambda v, d: _scaled(v, d, 1000, _SHORT),
    "s": _seconds,
    "ms": lambda v, d: _seconds(v / 1000, d),
    "bytes": lambda v, d: _scaled(v, d, 1024, (" B", " KiB", " MiB", " GiB", " TiB", " PiB")),
    "decbytes": lambda v, d: _scaled(v, d, 1000, (" B", " kB", " MB", " GB", " TB", " PB")),
    "reqps": lambda v, d: _scaled(v, d, 1000, _SHORT) + " req/s",
    "ops": lambda v, d: _scaled(v, d, 1000, _SHORT) + " ops/s",
    "cps": lambda v, d: _scaled(v, d, 1000, _SHORT) + " c/s",
    "cpm": lambda v, d: _scaled(v, d, 1000, _SHORT) + " cpm",
    "percent": lambda v, d: _fixed(v, d) + "%",
    "percentunit": lambda v, d: _fixed(v * 100, d) + "%",
}


def format_value(value: float, unit: str | None = "short", decimals: int | None = None) -> str:
    """``value`` as Grafana shows it in ``unit`` (an unknown unit is a suffix); ``decimals``
    None: about three significant digits."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    formatter = _UNITS.get(unit or "short")
    if formatter is None:
        return f"{_scaled(value, decimals, 1000, _SHORT)} {unit}"
    return formatter(value, decimals)


def _matches(matcher: Json, name: str) -> bool:
    """Whether an override's matcher (``byName`` or ``byRegexp``) selects field ``name``."""
    kind, pattern = matcher.get("id"), str(matcher.get("options", ""))
    if kind == "byName":
        return pattern == name
    if kind == "byRegexp":
        body = pattern[1:-1] if len(pattern) > 1 and pattern[0] == pattern[-1] == "/" else pattern
        return re.search(body, name) is not None
    return False


def field_options(panel: Json, name: str) -> dict[str, Any]:
    """The field options of field/series ``name``: the panel's defaults (``custom.*`` keys
    flattened as override properties name them), then each matching override."""
    config = panel.get("fieldConfig", {})
    defaults = config.get("defaults", {})
    options = {k: v for k, v in defaults.items() if k != "custom"}
    options.update({f"custom.{k}": v for k, v in defaults.get("custom", {}).items()})
    for item in config.get("overrides", []):
        if _matches(item.get("matcher", {}), name):
            options.update({p["id"]: p.get("value") for p in item.get("properties", [])})
    return options


def _key(value: Cell) -> str:
    """A value as the key of a value mapping: ``1.0`` is ``"1"``."""
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return "" if value is None else str(value)


def _special(match: str, value: Cell) -> bool:
    is_nan = isinstance(value, float) and math.isnan(value)
    return {
        "empty": value == "",
        "null": value is None,
        "nan": is_nan,
        "null+nan": value is None or is_nan,
        "true": value is True or value == "true",
        "false": value is False or value == "false",
    }.get(match, False)


def map_value(mappings: Sequence[Json], value: Cell) -> Json | None:
    """The result (``text``, ``color``) of the first value mapping that matches ``value``."""
    for mapping in mappings:
        kind, options = mapping.get("type"), mapping.get("options", {})
        if kind == "value" and _key(value) in options:
            result: Json = options[_key(value)]
            return result
        if kind == "special" and _special(options.get("match", ""), value):
            return dict(options.get("result", {}))
        if kind == "range" and isinstance(value, float):
            low, high = options.get("from"), options.get("to")
            if (low is None or value >= low) and (high is None or value <= high):
                return dict(options.get("result", {}))
        pattern = options.get("pattern", "(?!)")
        if kind == "regex" and isinstance(value, str) and re.search(pattern, value):
            return dict(options.get("result", {}))
    return None


def threshold_color(thresholds: Json | None, value: float | None) -> str:
    """The colour of the last threshold step ``value`` reaches (the base colour if none)."""
    steps = (thresholds or {}).get("steps") or [{"color": "green", "value": None}]
    chosen = steps[0].get("color")
    for step in steps[1:]:
        if value is not None and step.get("value") is not None and value >= step["value"]:
            chosen = step.get("color")
    return color(chosen)


@dataclass(frozen=True)
class Display:
    """A value as a panel shows it: its text and colour."""

    text: str
    color: str


def display(value: Cell, options: Mapping[str, Any], index: int = 0) -> Display:
    """``value`` with the field ``options``: mapped text and colour, else the value in its
    unit, coloured by the colour mode (thresholds, fixed, or the ``index``-th palette colour)."""
    mapped = map_value(options.get("mappings") or [], value)
    number = value if isinstance(value, float) else None
    if mapped and mapped.get("color"):
        shade = color(mapped["color"])
    else:
        mode = (options.get("color") or {}).get("mode", "thresholds")
        if mode == "fixed":
            shade = color((options.get("color") or {}).get("fixedColor"))
        elif mode == "thresholds":
            shade = threshold_color(options.get("thresholds"), number)
        else:
            shade = CLASSIC_PALETTE[index % len(CLASSIC_PALETTE)]
    if mapped and mapped.get("text") is not None:
        return Display(str(mapped["text"]), shade)
    if number is None:
        return Display("" if value is None else str(value), shade)
    return Display(format_value(number, options.get("unit"), options.get("decimals")), shade)


# --- series names and query results -----------------------------------------------------

_LEGEND = re.compile(r"\{\{\s*([^}\s]+)\s*\}\}")


def legend_name(legend_format: str | None, labels: Mapping[str, str], expr: str = "") -> str:
    """A series' display name: ``legendFormat`` with each ``{{label}}`` replaced by its value;
    without one, ``metric{label="value", ...}`` as Grafana names it (the query if no labels)."""
    if legend_format and legend_format != "__auto":
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), legend_format)
    rest = {k: v for k, v in labels.items() if k != "__name__"}
    matchers = ", ".join(f'{k}="{v}"' for k, v in sorted(rest.items()))
    name = labels.get("__name__", "")
    if not matchers:
        return name or expr
    return f"{name}{{{matchers}}}"


@dataclass(frozen=True)
class Named:
    """A series of a panel with its display name and the target it came from."""

    name: str
    series: Series
    target: Json


@dataclass(frozen=True)
class Annotation:
    """A dashboard annotation: a time or time range, its colour and text."""

    start: float
    end: float
    color: str
    text: str


@dataclass(frozen=True)
class Context:
    """What every panel is drawn with: Prometheus, the time window, the variables' values
    and the dashboard's annotations."""

    queries: Queries
    window: Window
    variables: Mapping[str, str]
    annotations: Sequence[Annotation] = ()


def _targets(panel: Json) -> Iterator[Json]:
    for target in panel.get("targets", []):
        if not target.get("hide") and target.get("expr"):
            yield target


def fetch(target: Json, context: Context) -> list[Series]:
    """A target's series: an instant query at the window's end if the target is instant
    only, else a range query over the window."""
    expr, window = expand(target["expr"], context.variables), context.window
    if target.get("instant") and not target.get("range"):
        return context.queries.instant(expr, window.end)
    return context.queries.range(expr, window.start, window.end, window.step)


def named_series(panel: Json, context: Context) -> list[Named]:
    """Every series of every visible target of ``panel``, named by its ``legendFormat``."""
    return [
        Named(legend_name(t.get("legendFormat"), s.labels, t["expr"]), s, t)
        for t in _targets(panel)
        for s in fetch(t, context)
    ]


def stat_values(panel: Json, named: Sequence[Named]) -> list[tuple[str, Display]]:
    """(series name, display) of each series' last value; the ``noValue`` text (or "No
    data") in the base threshold colour when there is none."""
    shown = []
    for index, item in enumerate(named):
        value = item.series.last()
        if value is not None:
            shown.append((item.name, display(value, field_options(panel, item.name), index)))
    if shown:
        return shown
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    return [("", Display(str(defaults.get("noValue", "No data")), NO_VALUE_BACKGROUND))]


def dashboard_annotations(dashboard: Json, context: Context) -> list[Annotation]:
    """The dashboard's Prometheus annotations in the window: one per run of points of each
    series (e.g. an alert's firing period), titled by ``titleFormat``."""
    found = []
    for entry in dashboard.get("annotations", {}).get("list", []):
        if not entry.get("expr") or not entry.get("enable", True):
            continue
        shade = color(entry.get("iconColor"), NAMED_COLORS["red"])
        for series in fetch({"expr": entry["expr"]}, context):
            text = legend_name(entry.get("titleFormat"), series.labels, entry.get("name", ""))
            for start, end in _runs([t for t, v in series.points if not math.isnan(v)], context):
                found.append(Annotation(start, end, shade, text))
    return found


def _runs(times: Sequence[float], context: Context) -> Iterator[tuple[float, float]]:
    """(first, last) of each run of ``times`` no more than 1.5 steps apart."""
    start = previous = None
    for moment in times:
        if previous is None or moment - previous > 1.5 * context.window.step:
            if start is not None and previous is not None:
                yield start, previous
            start = moment
        previous = moment
    if start is not None and previous is not None:
        yield start, previous


# --- tables: frames and transformations -------------------------------------------------


@dataclass
class Frame:
    """A table: column names in order, and rows mapping a column to its cell."""

    columns: list[str]
    rows: list[dict[str, Cell]] = field(default_factory=list)


def table_frame(series: Sequence[Series], value_column: str) -> Frame:
    """An instant query's result as Grafana's table format makes it: Time, the labels
    (sorted), then the value."""
    labels = sorted({name for s in series for name in s.labels})
    rows = []
    for item in series:
        moment, value = item.points[-1] if item.points else (math.nan, math.nan)
        row: dict[str, Cell] = {"Time": moment, **item.labels}
        rows.append({**row, value_column: value})
    return Frame(["Time", *labels, value_column], rows)


def _value_column(column: str) -> bool:
    return column == "Value" or column.startswith("Value #")


def merge(frames: Sequence[Frame]) -> Frame:
    """Grafana's ``merge``: one table; rows that agree on every label column they share
    become one row."""
    columns: list[str] = []
    for frame in frames:
        columns += [c for c in frame.columns if c not in columns]
    merged: list[dict[str, Cell]] = []
    for frame in frames:
        keys = [c for c in frame.columns if not _value_column(c)]
        for row in frame.rows:
            match = next((m for m in merged if _joins(m, row, keys)), None)
            if match is None:
                merged.append(dict(row))
            else:
                match.update(row)
    return Frame(columns, merged)


def _joins(merged: Mapping[str, Cell], row: Mapping[str, Cell], keys: Sequence[str]) -> bool:
    """Whether ``row`` belongs on ``merged``: equal on the shared keys, and not a value
    ``merged`` already has."""
    shared = [k for k in keys if k in merged]
    fresh = all(k not in merged for k in row if _value_column(k))
    return fresh and all(merged[k] == row.get(k) for k in shared)


def grouping_to_matrix(frame: Frame, options: Json) -> Frame:
    """Grafana's ``groupingToMatrix``: one row per ``rowField`` value, one column per
    ``columnField`` value (in order of appearance), cells from ``valueField``."""
    row_field = options.get("rowField", "")
    column_field = options.get("columnField", "")
    value_field = options.get("valueField", "Value")
    corner = f"{row_field}\\{column_field}"
    columns: list[str] = []
    rows: dict[str, dict[str, Cell]] = {}
    for row in frame.rows:
        key, column = _key(row.get(row_field)), _key(row.get(column_field))
        columns += [] if column in columns else [column]
        rows.setdefault(key, {corner: row.get(row_field)})[column] = row.get(value_field)
    return Frame([corner, *columns], list(rows.values()))


def organize(frame: Frame, options: Json) -> Frame:
    """Grafana's ``organize``: drop ``excludeByName`` columns, order by ``indexByName``
    (others after, in their order), rename by ``renameByName``."""
    excluded = {k for k, v in options.get("excludeByName", {}).items() if v}
    index = options.get("indexByName", {})
    renames = options.get("renameByName", {})
    kept = [c for c in frame.columns if c not in excluded]
    ordered = sorted(kept, key=lambda c: index.get(c, math.inf))
    rows = [{renames.get(c) or c: row.get(c) for c in ordered} for row in frame.rows]
    return Frame([renames.get(c) or c for c in ordered], rows)


def apply_transformations(frames: Sequence[Frame], transformations: Sequence[Json]) -> Frame:
    """The panel's table after its transformations (``merge``, ``groupingToMatrix``,
    ``organize``; others are skipped); the first frame if several remain."""
    current = list(frames) or [Frame([])]
    for step in transformations:
        if step.get("disabled"):
            continue
        kind, options = step.get("id"), step.get("options", {})
        if kind == "merge":
            current = [merge(current)]
        elif kind == "groupingToMatrix":
            current = [grouping_to_matrix(f, options) for f in current]
        elif kind == "organize":
            current = [organize(f, options) for f in current]
    return current[0]


def sort_rows(frame: Frame, sort_by: Sequence[Json]) -> Frame:
    """The rows sorted by the table's ``sortBy`` column (numbers before text, empty last)."""
    if not sort_by or sort_by[0].get("displayName") not in frame.columns:
        return frame
    column, descending = sort_by[0]["displayName"], bool(sort_by[0].get("desc"))

    def key(row: Mapping[str, Cell]) -> tuple[int, float, str]:
        value = row.get(column)
        if value is None:
            return (2, 0.0, "")
        if isinstance(value, float):
            return (0, value, "")
        return (1, 0.0, str(value))

    return Frame(frame.columns, sorted(frame.rows, key=key, reverse=descending))


def panel_table(panel: Json, context: Context) -> Frame:
    """A table panel's rows: its targets' frames (``Value #refId`` columns when several),
    transformed and sorted as the panel says."""
    targets = list(_targets(panel))
    frames = [
        table_frame(fetch(t, context), f"Value #{t.get('refId')}" if len(targets) > 1 else "Value")
        for t in targets
    ]
    frame = apply_transformations(frames, panel.get("transformations", []))
    return sort_rows(frame, panel.get("options", {}).get("sortBy", []))


# --- layout -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels, from the top-left corner of the picture."""

    x: float
    y: float
    w: float
    h: float

    def inset(self, left: float, top: float, right: float, bottom: float) -> Box:
        """The box with its edges moved inwards."""
        return Box(self.x + left, self.y + top, self.w - left - right, self.h - top - bottom)

    def split_bottom(self, height: float) -> tuple[Box, Box]:
        """(the box above, the bottom ``height`` pixels)."""
        height = min(height, self.h)
        return (
            Box(self.x, self.y, self.w, self.h - height),
            Box(self.x, self.y + self.h - height, self.w, height),
        )


def layout(dashboard: Json, width: int = WIDTH) -> tuple[list[tuple[Json, Box]], int]:
    """Each top-level panel with its box, placed from ``gridPos`` as Grafana does (24
    columns, rows of 30 px plus an 8 px gap), and the picture's height."""
    column = (width - 2 * MARGIN + GUTTER) / GRID_COLUMNS
    row = CELL_HEIGHT + GUTTER
    placed, bottom = [], 0
    for panel in dashboard.get("panels", []):
        grid = panel.get("gridPos", {})
        x, y = grid.get("x", 0), grid.get("y", 0)
        w, h = grid.get("w", GRID_COLUMNS), grid.get("h", 1)
        box = Box(MARGIN + x * column, HEADER + y * row, w * column - GUTTER, h * row - GUTTER)
        placed.append((panel, box))
        bottom = max(bottom, y + h)
    return placed, int(HEADER + bottom * row + FOOTER_HEIGHT)


# --- drawing primitives -----------------------------------------------------------------


@cache
def text_width(text: str, size: float, bold: bool = False) -> float:
    """The width in pixels of ``text`` at font size ``size`` pixels."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(size=size, weight="bold" if bold else "normal")
    width, _, _ = TextToPath().get_text_width_height_descent(text, prop, ismath=False)
    return float(width)


def fit(text: str, width: float, size: float, bold: bool = False) -> str:
    """``text``, cut with an ellipsis to fit in ``width`` pixels."""
    if text_width(text, size, bold) <= width:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if text_width(text[:middle] + "\u2026", size, bold) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low] + "\u2026" if low else ""


@dataclass
class Canvas:
    """The figure, and an overlay axes spanning it whose data coordinates are pixels from
    the top-left corner: backgrounds, titles, numbers, tables and legends go there; plots
    are axes of their own, placed on a box."""

    figure: Figure
    overlay: Axes
    width: int
    height: int

    @classmethod
    def create(cls, width: int, height: int) -> Canvas:
        """An empty picture of ``width`` by ``height`` pixels in the background colour."""
        from matplotlib.figure import Figure

        figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=BACKGROUND)
        overlay = figure.add_axes((0.0, 0.0, 1.0, 1.0))
        overlay.set_xlim(0, width)
        overlay.set_ylim(height, 0)
        overlay.set_axis_off()
        return cls(figure, overlay, width, height)

    def rect(self, box: Box, fill: str, *, edge: str | None = None, alpha: float = 1.0) -> None:
        """A filled rectangle, with a 1 px border in ``edge`` if given."""
        from matplotlib.patches import Rectangle

        self.overlay.add_patch(
            Rectangle(
                (box.x, box.y),
                box.w,
                box.h,
                facecolor=fill,
                edgecolor=edge or "none",
                linewidth=points(1) if edge else 0,
                alpha=alpha,
            )
        )

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float = 12,
        shade: str = TEXT,
        bold: bool = False,
        ha: str = "left",
        va: str = "center",
        clip: Box | None = None,
    ) -> Text:
        """Text at (x, y) pixels, ``size`` pixels high, clipped to ``clip`` if given."""
        from matplotlib.patches import Rectangle

        item = self.overlay.text(
            x,
            y,
            text,
            fontsize=points(size),
            color=shade,
            fontweight="bold" if bold else "normal",
            ha=ha,
            va=va,
        )
        if clip is not None:
            item.set_clip_path(
                Rectangle((clip.x, clip.y), clip.w, clip.h, transform=self.overlay.transData)
            )
        return item

    def axes(self, box: Box) -> Axes:
        """A new axes over ``box``, transparent, without spines, ticks in the dim text colour."""
        ax = self.figure.add_axes(
            (
                box.x / self.width,
                1 - (box.y + box.h) / self.height,
                box.w / self.width,
                box.h / self.height,
            )
        )
        ax.set_facecolor("none")
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.tick_params(colors=TEXT_DIM, labelsize=points(11), length=0, pad=points(6))
        return ax


def time_ticks(window: Window, width: float) -> list[float]:
    """Tick times at a round interval, about one per 110 pixels, none so close to either
    end that its label would stick out."""
    steps = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
    wanted = max(2, int(width / 110))
    span = window.end - window.start
    every = next((s for s in steps if span / s <= wanted), steps[-1])
    first = math.ceil(window.start / every) * every
    edge = 32 * span / max(width, 1.0)
    return [
        float(t)
        for t in range(int(first), int(window.end) + 1, every)
        if window.start + edge <= t <= window.end - edge
    ]


def clock(moment: float, seconds: bool) -> str:
    """A tick label: the UTC time of day."""
    return datetime.fromtimestamp(moment, UTC).strftime("%H:%M:%S" if seconds else "%H:%M")


def time_axis(ax: Axes, window: Window, width: float, *, grid: bool = True) -> None:
    """The window as the x axis, with clock ticks (and vertical grid lines)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    ticks = time_ticks(window, width)
    seconds = len(ticks) > 1 and (ticks[1] - ticks[0]) < 60
    ax.set_xlim(window.start, window.end)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: clock(v, seconds)))
    if grid:
        ax.grid(True, axis="x", color=GRID, linewidth=points(1))
        ax.set_axisbelow(True)


# --- panels -----------------------------------------------------------------------------

Renderer = Callable[[Canvas, Json, Box, Context], None]


def draw_message(canvas: Canvas, box: Box, message: str, shade: str = TEXT_DIM) -> None:
    """A centred message in a panel's content box."""
    size = 13.0
    canvas.text(
        box.x + box.w / 2,
        box.y + box.h / 2,
        fit(message, box.w - 16, size),
        size=size,
        shade=shade,
        ha="center",
        clip=box,
    )


def draw_row(canvas: Canvas, panel: Json, box: Box) -> None:
    """A row: its title as a heading across the width, with Grafana's chevron."""
    chevron = "\u25b8" if panel.get("collapsed") else "\u25be"
    title = f"{chevron}  {panel.get('title', '')}"
    canvas.text(box.x + 2, box.y + box.h / 2, title, size=15, bold=True, clip=box)


def draw_stat(canvas: Canvas, panel: Json, box: Box, context: Context) -> None:
    """A stat panel: each series' last value, side by side (stacked if the panel is tall),
    on its colour (``colorMode`` background) or in it (``value``)."""
    shown = stat_values(panel, named_series(panel, context))
    options = panel.get("options", {})
    horizontal = options.get("orientation", "auto") != "vertical" and box.w >= box.h
    count, gap = len(shown), 6
    for index, (name, value) in enumerate(shown):
        if horizontal:
            width = (box.w - gap * (count - 1)) / count
            cell = Box(box.x + index * (width + gap), box.y, width, box.h)
        else:
            height = (box.h - gap * (count - 1)) / count
            cell = Box(box.x, box.y + index * (height + gap), box.w, height)
        draw_stat_cell(canvas, cell, name if count > 1 else "", value, options)


def draw_stat_cell(canvas: Canvas, cell: Box, name: str, value: Display, options: Json) -> None:
    """One value of a stat panel, as large as fits, with its series name above it."""
    background = options.get("colorMode", "value") == "background"
    if background:
        canvas.rect(cell, value.color)
    ink = text_on(value.color) if background else value.color
    if value.color == NO_VALUE_BACKGROUND:
        ink = TEXT_DIM
    name_size = min(15.0, cell.h * 0.18) if name else 0.0
    if name:
        label = fit(name, cell.w - 12, name_size)
        canvas.text(
            cell.x + cell.w / 2,
            cell.y + 6 + name_size / 2,
            label,
            size=name_size,
            shade=ink,
            ha="center",
            clip=cell,
        )
    room = Box(cell.x + 6, cell.y + name_size + 6, cell.w - 12, cell.h - name_size - 12)
    size = min(room.h * 0.7, 56.0)
    size = min(size, size * room.w / max(1.0, text_width(value.text, size, True)))
    canvas.text(
        room.x + room.w / 2,
        room.y + room.h / 2,
        value.text,
        size=size,
        shade=ink,
        bold=True,
        ha="center",
        clip=cell,
    )


@dataclass(frozen=True)
class Line:
    """One series of a time series panel as drawn: name, colour, style and values on the
    window's grid."""

    name: str
    color: str
    width: float
    fill: float
    dashed: bool
    values: list[float]


def grid_times(window: Window) -> list[float]:
    """The range queries' timestamps: start, start + step, ... up to end."""
    count = int((window.end - window.start) / window.step + 1e-9) + 1
    return [window.start + i * window.step for i in range(count)]


def on_grid(series: Series, times: Sequence[float]) -> list[float]:
    """The series' values at ``times`` (NaN where it has no point)."""
    by_time = {round(t, 3): v for t, v in series.points}
    return [by_time.get(round(t, 3), math.nan) for t in times]


def lines(panel: Json, named: Sequence[Named], times: Sequence[float]) -> list[Line]:
    """The series of a time series panel with their colours and styles, overrides applied."""
    drawn = []
    for index, item in enumerate(named):
        options = field_options(panel, item.name)
        mode = options.get("color") or {}
        fixed = mode.get("fixedColor") if mode.get("mode") == "fixed" else None
        shade = color(fixed, CLASSIC_PALETTE[index % len(CLASSIC_PALETTE)])
        style = options.get("custom.lineStyle") or {}
        drawn.append(
            Line(
                item.name,
                shade,
                float(options.get("custom.lineWidth", 1)),
                float(options.get("custom.fillOpacity", 0)) / 100,
                style.get("fill") in ("dash", "dot"),
                on_grid(item.series, times),
            )
        )
    return drawn


_CALCS: dict[str, tuple[str, Callable[[Sequence[float]], float]]] = {
    "lastNotNull": ("Last *", lambda v: next(x for x in reversed(v) if not math.isnan(x))),
    "last": ("Last", lambda v: v[-1]),
    "max": ("Max", max),
    "min": ("Min", min),
    "mean": ("Mean", lambda v: sum(v) / len(v)),
    "sum": ("Total", sum),
}


def legend_calcs(values: Sequence[float], calcs: Sequence[str], unit: str | None) -> list[str]:
    """A series' legend values (``lastNotNull``, ``max`` ...) formatted in ``unit``."""
    numbers = [v for v in values if not math.isnan(v)]
    found = []
    for calc in calcs:
        if calc not in _CALCS:
            continue
        found.append(format_value(_CALCS[calc][1](numbers), unit) if numbers else "")
    return found


LEGEND_ROW = 19.0
LEGEND_SIZE = 11.5
CALC_WIDTH = 78.0


@dataclass(frozen=True)
class LegendPlan:
    """How a legend is laid out: rows per column, columns, and series left out."""

    rows: int
    columns: int
    hidden: int

    def height(self, table: bool) -> float:
        """Its height in pixels (with the header of a table legend)."""
        return (self.rows + (1 if table else 0)) * LEGEND_ROW + 6


def plan_legend(count: int, box: Box, table: bool) -> LegendPlan:
    """Fit ``count`` legend entries in at most 40 % of ``box``: in columns of at least 380
    pixels if one column is too tall, leaving out what still does not fit."""
    room = max(1, int((box.h * 0.4 - 6) / LEGEND_ROW) - (1 if table else 0))
    most_columns = max(1, int(box.w // 380)) if table else max(1, int(box.w // 200))
    columns = min(most_columns, max(1, math.ceil(count / room)))
    rows = min(room, math.ceil(count / columns))
    hidden = max(0, count - rows * columns)
    return LegendPlan(rows, columns, hidden)


def draw_legend(
    canvas: Canvas,
    box: Box,
    plan: LegendPlan,
    items: Sequence[Line],
    calcs: Sequence[str],
    unit: str | None,
) -> None:
    """A legend under a plot, laid out as ``plan`` says: colour, name, and the ``calcs`` of
    each series under their headers; "+N more series" for those left out."""
    width = box.w / plan.columns
    top = box.y + (LEGEND_ROW if calcs else 0)
    for column in range(plan.columns):
        right = box.x + (column + 1) * width - 8
        headers = [_CALCS[c][0] for c in calcs]
        draw_calcs(canvas, right, box.y + LEGEND_ROW / 2, headers, LINK, box)
    shown = items[: plan.rows * plan.columns - (1 if plan.hidden else 0)]
    for index, item in enumerate(shown):
        column, row = divmod(index, plan.rows)
        cell = Box(box.x + column * width, top + row * LEGEND_ROW, width, LEGEND_ROW)
        draw_swatch(canvas, cell.x + 2, cell.y + LEGEND_ROW / 2, item)
        name = fit(item.name, width - 34 - CALC_WIDTH * len(calcs), LEGEND_SIZE)
        canvas.text(cell.x + 26, cell.y + LEGEND_ROW / 2, name, size=LEGEND_SIZE, clip=box)
        texts = legend_calcs(item.values, calcs, unit)
        draw_calcs(canvas, cell.x + width - 8, cell.y + LEGEND_ROW / 2, texts, TEXT, box)
    if plan.hidden:
        column, row = divmod(len(shown), plan.rows)
        more = f"+{len(items) - len(shown)} more series"
        x, y = box.x + column * width + 26, top + (row + 0.5) * LEGEND_ROW
        canvas.text(x, y, more, size=LEGEND_SIZE, shade=TEXT_DIM, clip=box)


def draw_calcs(
    canvas: Canvas, right: float, y: float, texts: Sequence[str], shade: str, clip: Box
) -> None:
    """A legend line's values (or their headers), right-aligned in columns ending at
    ``right``."""
    for index, text in enumerate(texts):
        x = right - (len(texts) - 1 - index) * CALC_WIDTH
        canvas.text(x, y, text, size=LEGEND_SIZE, shade=shade, ha="right", clip=clip)


def draw_swatch(canvas: Canvas, x: float, y: float, item: Line) -> None:
    """A legend's colour mark: a short thick line (dashed for a dashed series)."""
    line = canvas.overlay.plot([x, x + 18], [y, y], color=item.color, linewidth=points(4))[0]
    if item.dashed:
        line.set_linewidth(points(2))
        line.set_dashes((2, 1.5))


def tick_size(unit: str | None, high: float) -> float:
    """What y ticks are round multiples of: minutes or hours on an axis in seconds that
    reaches them, KiB, MiB ... on one in bytes; else 1."""
    if unit == "s":
        return next((size for size in (86400.0, 3600.0, 60.0) if high >= size), 1.0)
    if unit == "bytes":
        return next((1024.0**k for k in range(5, 0, -1) if high >= 1024.0**k), 1.0)
    return 1.0


def value_ticks(
    low: float, high: float, height: float, integer: bool, unit: str | None = None
) -> list[float]:
    """Round y ticks (in ``unit``'s steps) spanning [low, high], about one per 45 pixels."""
    from matplotlib.ticker import MaxNLocator

    if high <= low:
        high = low + 1
    size = tick_size(unit, high)
    locator = MaxNLocator(nbins=max(2, int(height / 45)), steps=[1, 2, 2.5, 5, 10])
    locator.set_params(integer=integer or size > 1)
    ticks = [float(t) * size for t in locator.tick_values(low / size, high / size)]
    return [t for t in ticks if ticks[0] <= t <= ticks[-1]]


def stacked(items: Sequence[Line]) -> list[tuple[list[float], list[float]]]:
    """(bottom, top) of each series stacked on the ones before it (missing values as 0)."""
    base = [0.0] * (len(items[0].values) if items else 0)
    found = []
    for item in items:
        top = [b + (0.0 if math.isnan(v) else v) for b, v in zip(base, item.values, strict=True)]
        found.append((base, top))
        base = top
    return found


def draw_timeseries(canvas: Canvas, panel: Json, box: Box, context: Context) -> None:
    """A time series panel: lines, stacked areas or stacked bars per ``drawStyle`` and
    ``stacking``, a table legend under it, annotations as vertical marks."""
    times = grid_times(context.window)
    items = lines(panel, named_series(panel, context), times)
    defaults = field_options(panel, "")
    if not items:
        draw_message(canvas, box, str(defaults.get("noValue", "No data")))
        return
    legend = panel.get("options", {}).get("legend", {})
    table = legend.get("displayMode", "list") == "table"
    calcs = [c for c in legend.get("calcs", []) if c in _CALCS] if table else []
    plot = box
    if legend.get("showLegend", True):
        plan = plan_legend(len(items), box, bool(calcs))
        plot, legend_box = box.split_bottom(plan.height(bool(calcs)))
        draw_legend(canvas, legend_box, plan, items, calcs, defaults.get("unit"))
    draw_plot(canvas, plot, items, defaults, context)


def draw_plot(
    canvas: Canvas, box: Box, items: Sequence[Line], defaults: Json, context: Context
) -> None:
    """The plot of a time series panel, its y axis in the panel's unit."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    mode = defaults.get("custom.stacking", {}).get("mode", "none")
    bars = defaults.get("custom.drawStyle") == "bars"
    stacks = stacked(items) if bars or mode == "normal" else []
    tops = [v for _, top in stacks for v in top] or [v for i in items for v in i.values]
    numbers = [v for v in tops if not math.isnan(v)] or [0.0]
    integer = all(v == int(v) for v in numbers)
    unit = defaults.get("unit")
    ticks = value_ticks(min(0.0, *numbers), max(numbers), box.h - 24, integer, unit)
    labels = [format_value(t, unit) for t in ticks]
    left = max(text_width(label, 11) for label in labels) + 10
    ax = canvas.axes(box.inset(left, 6, 6, 22))
    ax.set_ylim(ticks[0], ticks[-1])
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    ax.grid(True, axis="y", color=GRID, linewidth=points(1))
    time_axis(ax, context.window, box.w - left)
    times = grid_times(context.window)
    if bars:
        draw_bars(ax, times, items, stacks, context.window.step)
    else:
        draw_lines(ax, times, items, stacks)
    draw_annotations(ax, context.annotations, context.window)


def draw_lines(
    ax: Axes,
    times: Sequence[float],
    items: Sequence[Line],
    stacks: Sequence[tuple[list[float], list[float]]],
) -> None:
    """Each series as a line filled down to zero (or to the series below when stacked)."""
    for index, item in enumerate(items):
        values = stacks[index][1] if stacks else item.values
        (line,) = ax.plot(times, values, color=item.color, linewidth=points(item.width))
        if item.dashed:
            line.set_dashes((4, 4))
        if item.fill > 0:
            bottom = stacks[index][0] if stacks else [0.0] * len(values)
            ax.fill_between(times, bottom, values, color=item.color, alpha=item.fill, lw=0)


def draw_bars(
    ax: Axes,
    times: Sequence[float],
    items: Sequence[Line],
    stacks: Sequence[tuple[list[float], list[float]]],
    step: float,
) -> None:
    """Each series as bars, stacked on the series before it."""
    for item, (bottom, top) in zip(items, stacks, strict=True):
        heights = [t - b for b, t in zip(bottom, top, strict=True)]
        ax.bar(
            times,
            heights,
            width=step * 0.8,
            bottom=bottom,
            color=item.color,
            alpha=max(item.fill, 0.3),
            edgecolor=item.color,
            linewidth=points(1),
        )


def merge_annotations(found: Sequence[Annotation], gap: float) -> list[Annotation]:
    """Annotations of one colour that overlap or are at most ``gap`` apart, as one."""
    merged: list[Annotation] = []
    for note in sorted(found, key=lambda n: (n.color, n.start)):
        last = merged[-1] if merged else None
        if last and last.color == note.color and note.start <= last.end + gap:
            merged[-1] = Annotation(last.start, max(last.end, note.end), last.color, last.text)
        else:
            merged.append(note)
    return merged


def draw_annotations(ax: Axes, found: Sequence[Annotation], window: Window) -> None:
    """Annotations, overlapping ones merged: a faint tint over their time, a strip under the
    time axis, and a dashed line where one starts inside the window."""
    for note in merge_annotations(found, 1.5 * window.step):
        end = min(note.end + window.step, window.end)
        ax.axvspan(note.start, end, color=note.color, alpha=0.07, lw=0)
        strip = ax.axvspan(note.start, end, ymin=-0.035, ymax=-0.01, color=note.color, lw=0)
        strip.set_clip_on(False)
        if note.start > window.start + window.step:
            ax.axvline(note.start, color=note.color, linewidth=points(1), dashes=(3, 3), alpha=0.7)


def draw_state_timeline(canvas: Canvas, panel: Json, box: Box, context: Context) -> None:
    """A state timeline: one lane per series, each run of equal values a bar in its mapped
    colour; the value mappings as the legend."""
    named = named_series(panel, context)
    if not named:
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        draw_message(canvas, box, str(defaults.get("noValue", "No data")))
        return
    entries = mapping_entries(field_options(panel, ""))
    lanes_box, legend_box = box.split_bottom(LEGEND_ROW + 6 if entries else 0)
    draw_list_legend(canvas, legend_box, entries)
    lanes_box, axis_box = lanes_box.split_bottom(22)
    capacity = max(1, int(lanes_box.h / 11))
    shown = named if len(named) <= capacity else named[: capacity - 1]
    label_size = min(12.0, lanes_box.h / len(shown) * 0.75)
    label_width = min(box.w * 0.3, max(text_width(n.name, label_size) for n in shown) + 12)
    ax = canvas.axes(
        Box(
            lanes_box.x + label_width,
            lanes_box.y,
            lanes_box.w - label_width,
            lanes_box.h + axis_box.h - 22,
        )
    )
    time_axis(ax, context.window, lanes_box.w - label_width, grid=False)
    ax.set_ylim(len(shown), 0)
    ax.set_yticks([])
    lane = lanes_box.h / len(shown)
    row_height = float(panel.get("options", {}).get("rowHeight", 0.9))
    for index, item in enumerate(shown):
        y = lanes_box.y + (index + 0.5) * lane
        canvas.text(
            lanes_box.x, y, fit(item.name, label_width - 10, label_size), size=label_size, clip=box
        )
        draw_lane(ax, index, row_height, item, panel, context.window)
    if len(shown) < len(named):
        more = f"+{len(named) - len(shown)} more series"
        canvas.text(box.x + box.w, box.y - 18, more, size=11, shade=TEXT_DIM, ha="right")


def draw_lane(
    ax: Axes, index: int, row_height: float, item: Named, panel: Json, window: Window
) -> None:
    """One lane of a state timeline: a bar per run of equal values, gaps where none."""
    options = field_options(panel, item.name)
    alpha = float(options.get("custom.fillOpacity", 80)) / 100
    top = index + (1 - row_height) / 2
    for start, end, value in state_runs(item.series, window):
        shade = display(value, options).color
        ax.broken_barh(
            [(start, end - start)],
            (top, row_height),
            facecolors=shade,
            alpha=alpha,
            edgecolor=PANEL,
            linewidth=points(1),
        )


def state_runs(series: Series, window: Window) -> list[tuple[float, float, float]]:
    """(start, end, value) of each run of equal values; a run ends at the next point, or a
    step after its last point when the series stops."""
    runs: list[tuple[float, float, float]] = []
    for moment, value in series.points:
        if math.isnan(value):
            continue
        if runs and runs[-1][2] == value and moment - runs[-1][1] <= 1.5 * window.step:
            runs[-1] = (runs[-1][0], moment + window.step, value)
        else:
            if runs and moment - runs[-1][1] <= 1.5 * window.step:
                runs[-1] = (runs[-1][0], moment, runs[-1][2])
            runs.append((moment, moment + window.step, value))
    return [(s, min(e, window.end), v) for s, e, v in runs]


def mapping_entries(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(text, colour) of each value of the field's value mappings, in their order."""
    entries = []
    for mapping in options.get("mappings") or []:
        if mapping.get("type") != "value":
            continue
        results = sorted(mapping.get("options", {}).values(), key=lambda r: r.get("index", 0))
        entries += [(str(r.get("text", "")), color(r.get("color"))) for r in results]
    return entries


def draw_list_legend(canvas: Canvas, box: Box, entries: Sequence[tuple[str, str]]) -> None:
    """A one-line legend: a colour square and the text of each entry, left to right."""
    x = box.x
    for text, shade in entries:
        canvas.rect(Box(x, box.y + box.h / 2 - 5, 10, 10), shade)
        canvas.text(x + 15, box.y + box.h / 2, text, size=LEGEND_SIZE, clip=box)
        x += 15 + text_width(text, LEGEND_SIZE) + 18


ROW_HEIGHT = 30.0
CELL_SIZE = 12.5


@dataclass(frozen=True)
class Column:
    """A table column as drawn: its header, field options, cell texts and colours, width."""

    name: str
    options: Mapping[str, Any]
    cells: list[Display | None]
    width: float
    numeric: bool


def table_columns(panel: Json, frame: Frame, width: float) -> list[Column]:
    """The columns of a table panel, each width proportional to its widest text (or the
    ``custom.width`` override), filling ``width``."""
    drafts = []
    for name in frame.columns:
        options = field_options(panel, name)
        cells = [None if r.get(name) is None else display(r.get(name), options) for r in frame.rows]
        wanted = (
            max(
                [text_width(name, CELL_SIZE, True)]
                + [text_width(c.text, CELL_SIZE) for c in cells if c]
            )
            + 24
        )
        fixed = options.get("custom.width")
        numeric = any(isinstance(r.get(name), float) for r in frame.rows)
        drafts.append((name, options, cells, float(fixed or max(wanted, 60.0)), numeric))
    total = sum(d[3] for d in drafts) or 1.0
    scale = width / total
    return [Column(n, o, c, w * scale, num) for n, o, c, w, num in drafts]


def draw_table(canvas: Canvas, panel: Json, box: Box, context: Context) -> None:
    """A table panel: header, then a row per result row; cells in their unit, coloured where
    an override gives ``color-background`` cells; "+N more rows" when they do not fit."""
    frame = panel_table(panel, context)
    if not frame.rows:
        draw_message(canvas, box, "No data")
        return
    columns = table_columns(panel, frame, box.w)
    sort_by = panel.get("options", {}).get("sortBy", [])
    sorted_column = sort_by[0].get("displayName") if sort_by else None
    fits = max(1, int((box.h - ROW_HEIGHT) / ROW_HEIGHT))
    count = len(frame.rows) if len(frame.rows) <= fits else fits - 1
    x = box.x
    for column in columns:
        cell = Box(x, box.y, column.width, ROW_HEIGHT)
        header = column.name + (" \u2191" if column.name == sorted_column else "")
        draw_cell(canvas, cell, Display(header, LINK), column.numeric, bold=True)
        for row in range(count):
            cell = Box(x, box.y + (row + 1) * ROW_HEIGHT, column.width, ROW_HEIGHT)
            draw_body_cell(canvas, cell, column, column.cells[row])
        x += column.width
    for row in range(count + 1):
        y = box.y + (row + 1) * ROW_HEIGHT
        canvas.overlay.plot([box.x, box.x + box.w], [y, y], color=BORDER, linewidth=points(1))
    if count < len(frame.rows):
        y = box.y + (count + 1.5) * ROW_HEIGHT
        more = f"+{len(frame.rows) - count} more rows"
        canvas.text(box.x + 8, y, more, size=CELL_SIZE, shade=TEXT_DIM, clip=box)


def draw_body_cell(canvas: Canvas, cell: Box, column: Column, value: Display | None) -> None:
    """One cell under the header: on its colour if the column has coloured backgrounds."""
    if value is None:
        return
    kind = (column.options.get("custom.cellOptions") or {}).get("type", "auto")
    if kind == "color-background":
        canvas.rect(cell.inset(0, 1, 1, 0), value.color)
        value = Display(value.text, text_on(value.color))
    elif kind != "color-text":
        value = Display(value.text, TEXT)
    draw_cell(canvas, cell, value, column.numeric)


def draw_cell(
    canvas: Canvas, cell: Box, value: Display, numeric: bool, *, bold: bool = False
) -> None:
    """A cell's text: numbers right-aligned, text left-aligned, cut to fit."""
    text = fit(value.text, cell.w - 16, CELL_SIZE, bold)
    x = cell.x + cell.w - 8 if numeric else cell.x + 8
    canvas.text(
        x,
        cell.y + cell.h / 2,
        text,
        size=CELL_SIZE,
        shade=value.color,
        bold=bold,
        ha="right" if numeric else "left",
        clip=cell,
    )


RENDERERS: dict[str, Renderer] = {
    "stat": draw_stat,
    "timeseries": draw_timeseries,
    "state-timeline": draw_state_timeline,
    "table": draw_table,
}
"""Panel type → the function drawing its content."""


def draw_panel(canvas: Canvas, panel: Json, box: Box, context: Context) -> None:
    """A panel: its frame and title, then its content (or why there is none)."""
    kind = str(panel.get("type", ""))
    if kind == "row":
        draw_row(canvas, panel, box)
        return
    canvas.rect(box, PANEL, edge=BORDER)
    title = fit(str(panel.get("title", "")), box.w - 16, 13.5, True)
    canvas.text(box.x + 8, box.y + TITLE_HEIGHT / 2, title, size=13.5, bold=True, clip=box)
    content = box.inset(8, TITLE_HEIGHT, 8, 8)
    renderer = RENDERERS.get(kind)
    if renderer is None:
        draw_message(canvas, content, f"(panel type {kind} not rendered)")
        return
    try:
        renderer(canvas, panel, content, context)
    except QueryError as error:
        draw_message(canvas, content, f"query failed: {error}", NAMED_COLORS["red"])


def draw_header(canvas: Canvas, dashboard: Json, context: Context) -> None:
    """The dashboard title, the variables' values and the time range; the footer line."""
    canvas.text(MARGIN, 24, str(dashboard.get("title", "")), size=20, bold=True)
    shown = []
    for variable in dashboard.get("templating", {}).get("list", []):
        value = context.variables.get(variable["name"], "")
        label = variable.get("label") or variable["name"]
        shown.append(f"{label}: {'All' if value == queries.ALL else value}")
    canvas.text(MARGIN, 52, "    ".join(shown), size=12.5, shade=TEXT_DIM)
    window = context.window
    minutes = max(1, round((window.end - window.start) / 60))
    start = datetime.fromtimestamp(window.start, UTC).strftime("%Y-%m-%d %H:%M")
    end = datetime.fromtimestamp(window.end, UTC).strftime("%H:%M UTC")
    span = f"Last {minutes} minute{'s' if minutes > 1 else ''}: {start} to {end}"
    canvas.text(canvas.width - MARGIN, 24, span, size=12.5, shade=TEXT_DIM, ha="right")
    canvas.text(MARGIN, canvas.height - FOOTER_HEIGHT / 2, FOOTER, size=11.5, shade=TEXT_DIM)


# --- the picture ------------------------------------------------------------------------


def render_dashboard(
    dashboard: Json,
    queries: Queries,
    window: Window,
    out: Path,
    variables: Mapping[str, str] | None = None,
) -> list[str]:
    """Draw ``dashboard`` from ``queries`` over ``window`` into the PNG ``out``; the titles
    of the panels drawn (also written into the PNG's ``Description``)."""
    context = Context(queries, window, dashboard_variables(dashboard, variables or {}))
    try:
        context = Context(
            queries, window, context.variables, dashboard_annotations(dashboard, context)
        )
    except QueryError as error:
        print(f"annotations of {dashboard.get('uid')}: {error}", file=sys.stderr)
    placed, height = layout(dashboard)
    canvas = Canvas.create(WIDTH, height)
    draw_header(canvas, dashboard, context)
    for panel, box in placed:
        draw_panel(canvas, panel, box, context)
    titles = panel_titles(dashboard)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "Title": str(dashboard.get("title", "")),
        "Description": json.dumps(titles),
        "Software": None,
    }
    canvas.figure.savefig(out, dpi=DPI, facecolor=BACKGROUND, metadata=metadata)
    return titles


def png_text(path: Path) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of the PNG at ``path``: keyword → text."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    found, offset = {}, 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword, text = _text_chunk(kind, body)
            found[keyword] = text
        if kind == b"IEND":
            break
    return found


def _text_chunk(kind: bytes, body: bytes) -> tuple[str, str]:
    """(keyword, text) of one text chunk."""
    keyword, _, rest = body.partition(b"\0")
    if kind == b"tEXt":
        return keyword.decode("latin-1"), rest.decode("latin-1")
    if kind == b"zTXt":
        return keyword.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1")
    compressed, rest = rest[0], rest[2:]
    _language, _, rest = rest.partition(b"\0")
    _translated, _, text = rest.partition(b"\0")
    return keyword.decode("latin-1"), (zlib.decompress(text) if compressed else text).decode()


# --- command line -----------------------------------------------------------------------


def _variable(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    """Render every dashboard of ``--dashboards`` into ``--out``/<uid>.png; exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="%(default)s")
    parser.add_argument("--dashboards", type=Path, default=DASHBOARD_DIR, help="%(default)s")
    parser.add_argument("--minutes", type=float, default=30.0, help="window: %(default)s")
    parser.add_argument("--end", type=float, default=None, help="unix time (default: now)")
    parser.add_argument(
        "--var",
        type=_variable,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template variable's value (repeatable; the others are All)",
    )
    args = parser.parse_args(argv)
    queries = Prometheus(args.prometheus)
    window = Window.last(args.minutes * 60, args.end)
    variables = {"datasource": "prometheus", **dict(args.var)}
    for path in sorted(args.dashboards.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        out = args.out / f"{dashboard.get('uid') or path.stem}.png"
        render_dashboard(dashboard, queries, window, out, variables)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
