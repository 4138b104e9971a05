"""grafana/render.py: panels laid out as Grafana lays them out, values formatted as Grafana
formats them, table transformations, series names, and PNG text chunks; and the committed
pictures of docs/images/ show the panels of the dashboards they are named after.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.scripts import renderer

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
IMAGE_DIR = ROOT / "docs" / "images"

render = renderer()
Json = dict[str, Any]


class Canned:
    """Query answers from a table: the series of the first key the query contains."""

    def __init__(self, answers: Mapping[str, Sequence[Any]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str]] = []

    def _answer(self, expr: str) -> list[Any]:
        return next((list(s) for key, s in self.answers.items() if key in expr), [])

    def range(self, expr: str, start: float, end: float, step: float) -> list[Any]:
        self.asked.append(("range", expr))
        return self._answer(expr)

    def instant(self, expr: str, at: float) -> list[Any]:
        self.asked.append(("instant", expr))
        return self._answer(expr)


def series(labels: dict[str, str], *values: float, start: float = 1000.0) -> Any:
    """A series of ``values`` one second apart from ``start``."""
    return render.Series(labels, [(start + i, v) for i, v in enumerate(values)])


def frame(columns: list[str], *rows: tuple[Any, ...]) -> Any:
    return render.Frame(columns, [dict(zip(columns, row, strict=True)) for row in rows])


def target(expr: str, legend: str = "", *, table: bool = False, ref_id: str = "A") -> Json:
    return {
        "expr": expr,
        "legendFormat": legend,
        "instant": table,
        "range": not table,
        "refId": ref_id,
    }


def panel(
    kind: str, title: str, grid: tuple[int, int, int, int], *targets: Json, **extra: Any
) -> Json:
    x, y, w, h = grid
    return {
        "type": kind,
        "title": title,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": list(targets),
        **extra,
    }


def stat_fields(**defaults: Any) -> Json:
    return {
        "fieldConfig": {"defaults": {"color": {"mode": "thresholds"}, **defaults}, "overrides": []}
    }


class TestLayout:
    def test_grid_position_becomes_pixels_of_24_columns_and_38_pixel_rows(self) -> None:
        """A panel's box starts at its gridPos column and row and spans its width and
        height in grid units, less the gutter."""
        board = {"panels": [panel("row", "Now", (0, 0, 24, 1)), panel("stat", "A", (6, 1, 6, 4))]}
        placed, height = render.layout(board, 1600)
        column = (1600 - 2 * render.MARGIN + render.GUTTER) / 24
        box = placed[1][1]
        assert box.x == pytest.approx(render.MARGIN + 6 * column)
        assert box.y == pytest.approx(render.HEADER + 1 * 38)
        assert box.w == pytest.approx(6 * column - render.GUTTER)
        assert box.h == pytest.approx(4 * 38 - render.GUTTER)
        assert height == render.HEADER + 5 * 38 + render.FOOTER_HEIGHT

    def test_neighbours_do_not_overlap_and_a_row_spans_the_width(self) -> None:
        """Panels side by side leave a gap between them, and a row is as wide as the grid."""
        board = {
            "panels": [
                panel("row", "Now", (0, 0, 24, 1)),
                panel("stat", "A", (0, 1, 12, 4)),
                panel("stat", "B", (12, 1, 12, 4)),
            ]
        }
        (_, row), (_, left), (_, right) = render.layout(board, 1600)[0]
        assert left.x + left.w < right.x
        assert right.x + right.w == pytest.approx(row.x + row.w)


class TestFormatValue:
    @pytest.mark.parametrize(
        ("value", "unit", "decimals", "text"),
        [
            (3.0, "short", None, "3"),
            (1234.0, "short", None, "1.23 K"),
            (2_500_000.0, "short", None, "2.5 Mil"),
            (3.14159, "short", 2, "3.14"),
            (12.3, "s", None, "12.3 s"),
            (0.25, "s", None, "250 ms"),
            (90.0, "s", None, "1.5 min"),
            (7200.0, "s", None, "2 hour"),
            (1.5 * 1024**3, "bytes", None, "1.5 GiB"),
            (512.0, "bytes", None, "512 B"),
            (2.5, "reqps", None, "2.5 req/s"),
            (7.0, "cpm", None, "7 cpm"),
            (0.5, "percentunit", None, "50%"),
            (0.1234, "percentunit", 1, "12.3%"),
            (5.0, "widgets", None, "5 widgets"),
        ],
    )
    def test_units_and_decimals(
        self, value: float, unit: str, decimals: int | None, text: str
    ) -> None:
        """A value is shown scaled to its unit's prefix, with three significant digits or
        the given decimals."""
        assert render.format_value(value, unit, decimals) == text


class TestStatValues:
    def test_value_mapping_gives_text_and_colour(self) -> None:
        """A mapped value shows the mapping's text on the mapping's colour."""
        mappings = [
            {
                "type": "value",
                "options": {
                    "1": {"text": "up", "color": "green"},
                    "0": {"text": "down", "color": "red"},
                },
            }
        ]
        stat = {**panel("stat", "Up", (0, 0, 6, 4)), **stat_fields(mappings=mappings)}
        named = [render.Named("p", series({}, 0.0, 1.0), {})]
        ((_, shown),) = render.stat_values(stat, named)
        assert (shown.text, shown.color) == ("up", render.NAMED_COLORS["green"])

    def test_threshold_colour_unit_and_last_non_null_value(self) -> None:
        """The last number of a series is shown in the unit, coloured by the highest
        threshold it reaches."""
        steps = {
            "mode": "absolute",
            "steps": [
                {"color": "green", "value": None},
                {"color": "orange", "value": 120},
                {"color": "red", "value": 180},
            ],
        }
        stat = {**panel("stat", "Age", (0, 0, 6, 4)), **stat_fields(unit="s", thresholds=steps)}
        named = [render.Named("age", series({}, 200.0, 150.0, float("nan")), {})]
        ((_, shown),) = render.stat_values(stat, named)
        assert (shown.text, shown.color) == ("2.5 min", render.NAMED_COLORS["orange"])

    def test_decimals_apply_to_every_series(self) -> None:
        """With several series, each is shown under its own name with the panel's decimals."""
        stat = {**panel("stat", "Cycles", (0, 0, 6, 4)), **stat_fields(decimals=0)}
        named = [render.Named(n, series({}, v), {}) for n, v in (("a", 41.6), ("b", 2.2))]
        shown = render.stat_values(stat, named)
        assert [(name, d.text) for name, d in shown] == [("a", "42"), ("b", "2")]

    @pytest.mark.parametrize(("no_value", "text"), [("off", "off"), (None, "No data")])
    def test_no_value_text(self, no_value: str | None, text: str) -> None:
        """Without any number the panel shows its noValue text, "No data" by default."""
        fields = stat_fields() if no_value is None else stat_fields(noValue=no_value)
        stat = {**panel("stat", "Discovery", (0, 0, 6, 4)), **fields}
        nothing = [render.Named("x", series({}, float("nan")), {})]
        ((_, shown),) = render.stat_values(stat, nothing)
        assert shown.text == text


class TestTransformations:
    def test_merge_joins_rows_on_their_shared_labels(self) -> None:
        """Rows of several queries that agree on their common labels become one row with
        each query's value column."""
        info = frame(
            ["Time", "gpu_type", "spec", "Value #info"],
            (1.0, "A100", "gpu.8", 1.0),
            (1.0, "", "cpu.2", 1.0),
        )
        gpus = frame(["Time", "spec", "Value #gpus"], (1.0, "cpu.2", 0.0), (1.0, "gpu.8", 8.0))
        merged = render.apply_transformations([info, gpus], [{"id": "merge", "options": {}}])
        assert merged.columns == ["Time", "gpu_type", "spec", "Value #info", "Value #gpus"]
        assert [(r["spec"], r["gpu_type"], r["Value #gpus"]) for r in merged.rows] == [
            ("gpu.8", "A100", 8.0),
            ("cpu.2", "", 0.0),
        ]

    def test_grouping_to_matrix_makes_a_row_per_row_field_and_a_column_per_column_field(
        self,
    ) -> None:
        """Each pool becomes a row and each status a column; a missing pair is empty."""
        jobs = frame(
            ["Time", "pool", "status", "Value"],
            (1.0, "a", "running", 3.0),
            (1.0, "a", "failed", 1.0),
            (1.0, "b", "running", 5.0),
        )
        options = {"columnField": "status", "rowField": "pool", "valueField": "Value"}
        matrix = render.apply_transformations(
            [jobs], [{"id": "groupingToMatrix", "options": options}]
        )
        assert matrix.columns == ["pool\\status", "running", "failed"]
        assert matrix.rows == [
            {"pool\\status": "a", "running": 3.0, "failed": 1.0},
            {"pool\\status": "b", "running": 5.0},
        ]

    def test_organize_hides_orders_and_renames(self) -> None:
        """Excluded columns go, indexed ones come first in index order, and renamed ones
        take their new header."""
        info = frame(["Time", "instance", "job", "version", "Value"], (1.0, "h:1", "j", "1.2", 1.0))
        options = {
            "excludeByName": {"Time": True, "Value": True},
            "indexByName": {"version": 0, "instance": 1},
            "renameByName": {"version": "Version", "instance": "Instance"},
        }
        table = render.apply_transformations([info], [{"id": "organize", "options": options}])
        assert table.columns == ["Version", "Instance", "job"]
        assert table.rows == [{"Version": "1.2", "Instance": "h:1", "job": "j"}]


class TestSeriesNames:
    @pytest.mark.parametrize(
        ("legend", "labels", "name"),
        [
            ("{{pool}} {{status}}", {"pool": "a", "status": "running"}, "a running"),
            ("{{ pool }} ({{type}})", {"pool": "a"}, "a ()"),
            ("items", {"pool": "a"}, "items"),
            ("", {"__name__": "up", "job": "x"}, 'up{job="x"}'),
            ("", {}, "vector(0)"),
        ],
    )
    def test_legend_format(self, legend: str, labels: dict[str, str], name: str) -> None:
        """``{{label}}`` becomes the label's value (empty if missing); without a format, the
        series is named by its metric and labels, or by the query if it has none."""
        assert render.legend_name(legend, labels, "vector(0)") == name

    def test_variables_and_macros_are_expanded_as_generate_py_does(self) -> None:
        """A variable not given is All (.*), and $__rate_interval is generate.py's value."""
        board = {"templating": {"list": [{"name": "pool"}, {"name": "project_id"}]}}
        variables = render.dashboard_variables(board, {"project_id": "p1"})
        expr = 'rate(x{pool=~"$pool", project_id=~"${project_id}"}[$__rate_interval])'
        assert render.expand(expr, variables) == 'rate(x{pool=~".*", project_id=~"p1"}[1m])'


def tiny_dashboard() -> Json:
    return {
        "title": "Tiny / Dashboard",
        "uid": "tiny",
        "templating": {"list": [{"name": "pool"}]},
        "annotations": {"list": [{"name": "alerts", "expr": "ALERTS", "iconColor": "red"}]},
        "panels": [
            panel("row", "Now", (0, 0, 24, 1)),
            panel(
                "stat",
                "Running jobs",
                (0, 1, 8, 4),
                target('jobs{pool=~"$pool"}', "jobs"),
                **stat_fields(decimals=0),
            ),
            panel(
                "table",
                "Pools",
                (8, 1, 16, 4),
                target("pool_info", table=True),
                transformations=[
                    {
                        "id": "organize",
                        "options": {
                            "excludeByName": {"Time": True},
                            "renameByName": {"pool": "Pool"},
                        },
                    }
                ],
            ),
            panel(
                "timeseries",
                "Jobs",
                (0, 5, 12, 6),
                target("rate(jobs[5m])", "{{pool}}"),
                options={
                    "legend": {
                        "displayMode": "table",
                        "calcs": ["lastNotNull", "max"],
                        "showLegend": True,
                    }
                },
            ),
            panel("state-timeline", "Up", (12, 5, 12, 6), target("up", "{{pool}}")),
            panel("piechart", "Shares", (0, 11, 24, 4), target("jobs")),
        ],
    }


class TestRenderDashboard:
    def test_png_lists_the_titles_of_the_panels_drawn(self, tmp_path: Path) -> None:
        """The picture's text chunks carry the dashboard title and every panel's title in
        order, unknown panel types included."""
        queries = Canned(
            {
                "ALERTS": [series({"alertname": "X"}, 1.0, 1.0, start=1030.0)],
                "pool_info": [series({"pool": "a", "phase": "Running"}, 1.0)],
                "rate(jobs": [series({"pool": p}, 1.0, 2.0, 3.0) for p in ("a", "b")],
                "jobs": [series({}, 4.0, 5.0)],
                "up": [series({"pool": "a"}, 1.0, 1.0, 0.0, 1.0)],
            }
        )
        out = tmp_path / "tiny.png"
        window = render.Window(1000.0, 1060.0, 1.0)
        board = tiny_dashboard()
        titles = render.render_dashboard(board, queries, window, out, {"datasource": "x"})
        text = render.png_text(out)
        assert titles == [p["title"] for p in board["panels"]]
        assert json.loads(text["Description"]) == titles
        assert text["Title"] == "Tiny / Dashboard"
        assert "Software" not in text
        assert ("range", 'jobs{pool=~".*"}') in queries.asked
        assert ("instant", "pool_info") in queries.asked

    def test_a_failing_query_is_shown_in_its_panel(self, tmp_path: Path) -> None:
        """A query Prometheus refuses leaves a message in its panel; the picture is still
        written."""

        class Refusing(Canned):
            def range(self, expr: str, start: float, end: float, step: float) -> list[Any]:
                raise render.QueryError("bad_data: parse error")

        out = tmp_path / "tiny.png"
        board = tiny_dashboard()
        window = render.Window(1000.0, 1060.0, 1.0)
        render.render_dashboard(board, Refusing({}), window, out)
        assert json.loads(render.png_text(out)["Description"])[0] == "Now"
        canvas = render.Canvas.create(render.WIDTH, 400)
        context = render.Context(Refusing({}), window, {"pool": ".*"})
        jobs = next(p for p in board["panels"] if p["title"] == "Jobs")
        render.draw_panel(canvas, jobs, render.Box(0, 0, 800, 300), context)
        texts = [t.get_text() for t in canvas.overlay.texts]
        assert any(t.startswith("query failed: bad_data: parse error") for t in texts), texts


def dashboards() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


class TestCommittedImages:
    @pytest.mark.parametrize("path", dashboards(), ids=lambda p: p.stem)
    def test_image_shows_the_panels_of_its_dashboard(self, path: Path) -> None:
        """docs/images/<uid>.png exists and lists exactly the panel titles of its dashboard,
        in order (run ``make screenshots`` after changing a dashboard)."""
        board = json.loads(path.read_text(encoding="utf-8"))
        image = IMAGE_DIR / f"{board['uid']}.png"
        assert image.is_file(), f"{image} missing: run make screenshots"
        text = render.png_text(image)
        assert text.get("Title") == board["title"]
        assert json.loads(text["Description"]) == [p["title"] for p in board["panels"]], (
            f"{image} is out of date: run make screenshots"
        )
