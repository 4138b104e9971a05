"""Grafana dashboards: ``grafana/dashboards/*.json`` are what ``grafana/generate.py`` writes,
import into Grafana 10 as they are, and query only series the exporter serves or the
recording rules of ``deploy/prometheus/rules.yml`` define.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from exporter.models import JOB_STATUSES
from tests.support import scripts

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "grafana" / "generate.py"
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
GOLDEN = ROOT / "tests" / "golden" / "metrics.prom"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
UIDS = {
    "modelarts-fleet.json": "modelarts-fleet",
    "modelarts-pools.json": "modelarts-pools",
    "modelarts-capacity.json": "modelarts-capacity",
    "modelarts-exporter.json": "modelarts-exporter",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EXTRA_METRICS: dict[str, frozenset[str]] = {"process_resident_memory_bytes": frozenset()}
SCRAPE_LABELS = frozenset({"instance", "job"})
GRID_WIDTH = 24

Board = dict[str, Any]

# --- helpers: reading the dashboards, the exposition and the rules ---------------------


def golden_labels() -> dict[str, frozenset[str]]:
    """Metric name → label names, from the golden exposition."""
    labels: dict[str, set[str]] = {}
    for line in GOLDEN.read_text(encoding="utf-8").splitlines():
        match = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? ", line)
        if match and not line.startswith("#"):
            names = set(re.findall(r'(\w+)="', match.group(2) or ""))
            labels.setdefault(match.group(1), set()).update(names)
    return {name: frozenset(names) for name, names in labels.items()}


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, matchers between braces) for every series selector in a PromQL query."""
    without_lists = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr
    )
    keywords = {"and", "or", "unless", "offset", "bool", "inf", "nan"}
    found = []
    for match in re.finditer(r"(?<![\w:.$])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?", without_lists):
        rest = without_lists[match.end() :].lstrip()
        if match.group(1).lower() in keywords or (not match.group(2) and rest.startswith("(")):
            continue
        found.append((match.group(1), (match.group(2) or "{}")[1:-1]))
    return found


def known_labels() -> dict[str, frozenset[str]]:
    """Label names of every series a dashboard may query: scraped metrics and recorded rules.

    Scraped metrics are those of the golden exposition and ``EXTRA_METRICS``. A rule aggregating
    ``by (...)`` has those labels; any other keeps the labels of the metric it reads, scrape
    labels included.
    """
    exposed = {**golden_labels(), **EXTRA_METRICS}
    scraped = {name: labels | SCRAPE_LABELS for name, labels in exposed.items()}
    recorded = {}
    for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            if "record" not in rule:
                continue
            by = re.search(r"\bby\s*\(([^)]*)\)", rule["expr"])
            if by:
                recorded[rule["record"]] = frozenset(re.findall(r"\w+", by.group(1)))
            else:
                recorded[rule["record"]] = scraped[selectors(rule["expr"])[0][0]]
    return {**scraped, **recorded}


def panels(board: Board) -> Iterator[Board]:
    """Every panel, those inside rows included."""
    stack = list(board["panels"])
    while stack:
        item = stack.pop(0)
        yield item
        stack.extend(item.get("panels", []))


def targets(board: Board) -> Iterator[tuple[Board, Board]]:
    """(panel, target) for every query of the dashboard."""
    for item in panels(board):
        for query in item.get("targets", []):
            yield item, query


def variable_names(board: Board) -> set[str]:
    return {v["name"] for v in board["templating"]["list"]}


def datasource_refs(node: Any) -> Iterator[Any]:
    """Every value of a ``datasource`` key anywhere in the JSON."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_refs(value)


def overlaps(items: list[Board]) -> list[tuple[int, int]]:
    """Pairs of panel ids whose grid rectangles intersect."""
    found = []
    for index, a in enumerate(items):
        for b in items[index + 1 :]:
            ga, gb = a["gridPos"], b["gridPos"]
            if (
                ga["x"] < gb["x"] + gb["w"]
                and gb["x"] < ga["x"] + ga["w"]
                and ga["y"] < gb["y"] + gb["h"]
                and gb["y"] < ga["y"] + ga["h"]
            ):
                found.append((a["id"], b["id"]))
    return found


def layouts(board: Board) -> Iterator[list[Board]]:
    """The panels that share the grid: the top level, and each collapsed row's panels."""
    yield board["panels"]
    for item in board["panels"]:
        if item["type"] == "row" and item.get("collapsed"):
            yield item["panels"]


def used_variables(text: str) -> set[str]:
    return set(re.findall(r"\$\{?(\w+)", text))


def queries_and_definitions(board: Board) -> Iterator[str]:
    for _, query in targets(board):
        yield query["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["definition"]
            yield variable["query"]["query"]


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return scripts.generator()


@pytest.fixture(params=sorted(UIDS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def board(name: str) -> Board:
    return dict(json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8")))


# --- tests ----------------------------------------------------------------------------


class TestGenerator:
    def test_committed_files_match_the_generator(self) -> None:
        """``generate.py --check`` passes on the committed dashboards."""
        result = subprocess.run(
            [sys.executable, str(GENERATOR), "--check"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    def test_check_reports_missing_and_changed_files(
        self, generator: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--check`` fails while a file is missing or edited, and passes once rewritten."""
        assert generator.main(["--check", "--out-dir", str(tmp_path)]) == 1
        assert generator.main(["--out-dir", str(tmp_path)]) == 0
        assert generator.main(["--check", "--out-dir", str(tmp_path)]) == 0
        edited = tmp_path / "modelarts-pools.json"
        edited.write_text(edited.read_text(encoding="utf-8").replace("Pools", "Puddles"))
        capsys.readouterr()
        assert generator.main(["--check", "--out-dir", str(tmp_path)]) == 1
        assert "modelarts-pools.json is out of date" in capsys.readouterr().err

    def test_output_is_deterministic(self, generator: ModuleType) -> None:
        """Two runs of the generator produce the same bytes."""
        assert generator.build_all() == generator.build_all()

    def test_files_are_indented_json_with_a_trailing_newline(self, name: str) -> None:
        """Each file is valid JSON, indented by 2, ending in one newline."""
        text = (DASHBOARD_DIR / name).read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


class TestDashboardModel:
    def test_uid_is_stable(self, name: str, board: Board) -> None:
        """The dashboard's uid is the one links and provisioning rely on."""
        assert board["uid"] == UIDS[name]
        assert board["id"] is None

    def test_schema_version_tag_and_title(self, board: Board) -> None:
        """Schema version 39, the modelarts tag and a title."""
        assert board["schemaVersion"] == 39
        assert board["tags"] == ["modelarts"]
        assert board["title"].startswith("ModelArts / ")

    def test_datasource_variable(self, board: Board) -> None:
        """The first variable picks a Prometheus data source."""
        first = board["templating"]["list"][0]
        assert (first["name"], first["type"], first["query"]) == (
            "datasource",
            "datasource",
            "prometheus",
        )

    def test_every_datasource_is_the_variable(self, board: Board) -> None:
        """Every panel, target and variable reads ``${datasource}``, never a fixed uid."""
        refs = list(datasource_refs(board))
        assert refs
        assert all(ref == DATASOURCE for ref in refs), refs
        for item, query in targets(board):
            assert item["datasource"] == DATASOURCE
            assert query["datasource"] == DATASOURCE

    def test_panel_ids_are_unique(self, board: Board) -> None:
        """No two panels share an id."""
        ids = [item["id"] for item in panels(board)]
        assert len(ids) == len(set(ids))

    def test_panels_stay_in_the_grid_without_overlapping(self, board: Board) -> None:
        """Panels fit the 24-column grid and no two of them cover the same cell."""
        for layout in layouts(board):
            for item in layout:
                grid = item["gridPos"]
                assert grid["x"] >= 0
                assert grid["y"] >= 0
                assert grid["w"] > 0
                assert grid["h"] > 0
                assert grid["x"] + grid["w"] <= GRID_WIDTH
            assert overlaps(layout) == []

    def test_links_to_the_other_dashboards(self, board: Board) -> None:
        """A dashboards link lists every dashboard tagged modelarts, keeping time and variables."""
        link = next(link for link in board["links"] if link["type"] == "dashboards")
        assert link["tags"] == ["modelarts"]
        assert link["keepTime"]
        assert link["includeVars"]

    def test_requires_lists_every_panel_type(self, board: Board) -> None:
        """``__requires`` names every panel plugin used, as an export for sharing does."""
        required = {r["id"] for r in board["__requires"] if r["type"] == "panel"}
        used = {item["type"] for item in panels(board)} - {"row"}
        assert required == used
        assert {"grafana", "prometheus"} <= {r["id"] for r in board["__requires"]}

    def test_every_used_variable_is_defined(self, generator: ModuleType, board: Board) -> None:
        """Each ``$var`` in a query or variable definition is a dashboard or Grafana variable."""
        defined = variable_names(board) | set(generator.GRAFANA_MACROS)
        for text in queries_and_definitions(board):
            assert used_variables(text) <= defined, text

    def test_every_metric_exists(self, board: Board) -> None:
        """Queries name only golden metrics, recording rules or process_resident_memory_bytes."""
        known = known_labels()
        for item, query in targets(board):
            found = selectors(query["expr"])
            assert found, query["expr"]
            for metric, _ in found:
                assert metric in known, f"{item['title']}: {metric}"

    def test_queries_filter_by_the_variables(self, board: Board) -> None:
        """A selector whose metric has a variable's label matches it with ``label=~"$label"``."""
        known = known_labels()
        bound = variable_names(board) - {"datasource"}
        for item, query in targets(board):
            for metric, matchers in selectors(query["expr"]):
                for label in bound & known[metric]:
                    assert f'{label}=~"${label}"' in matchers, f"{item['title']}: {metric}"

    def test_variables_allowing_all_match_everything(self, board: Board) -> None:
        """A multi-value variable's All stands for ``.*``, so ``=~`` keeps every series."""
        for variable in board["templating"]["list"]:
            if variable.get("includeAll"):
                assert variable["allValue"] == ".*"

    def test_region_and_project_are_multi_select_with_all(self, board: Board) -> None:
        """Every dashboard offers region and project, several values or All, the projects
        those of the selected regions."""
        variables = {v["name"]: v for v in board["templating"]["list"]}
        for name in ("region", "project_id"):
            assert variables[name]["multi"], name
            assert variables[name]["includeAll"], name
        assert 'region=~"$region"' in variables["project_id"]["definition"]

    def test_no_query_falls_back_to_a_constant(self, board: Board) -> None:
        """No panel query ends in ``or vector(...)``: a panel shows a zero only where the
        exporter or a recording rule serves one, so "every query returns data" means it."""
        for item, query in targets(board):
            assert "vector(" not in query["expr"], item["title"]

    def test_counter_windows_do_not_follow_the_zoom(self, board: Board) -> None:
        """No panel plots ``increase`` over ``$__rate_interval`` (its value changes with the
        zoom): rates, or fixed windows such as [1h]."""
        for item, query in targets(board):
            assert not re.search(r"increase\([^\]]*\[\$__rate_interval\]", query["expr"]), item[
                "title"
            ]

    def test_instant_queries_are_tables(self, board: Board) -> None:
        """Table panels use instant queries in table format; other panels use range queries."""
        for item, query in targets(board):
            is_table = item["type"] == "table"
            assert (query["instant"], query["range"]) == (is_table, not is_table)
            assert query["format"] == ("table" if is_table else "time_series")


class TestPanelQueries:
    def test_substitutes_every_variable(self, generator: ModuleType, board: Board) -> None:
        """No ``$`` is left once the variables and Grafana's intervals are filled in."""
        values = {"project_id": "901de0901de0901de0901de0901de090", "instance": "exporter:10072"}
        queries = generator.panel_queries(board, values)
        assert queries
        for title, expr in queries:
            assert "$" not in expr, title
        texts = " ".join(expr for _, expr in queries)
        assert 'project_id=~"901de0901de0901de0901de0901de090"' in texts

    def test_covers_every_target(self, generator: ModuleType, board: Board) -> None:
        """One query per target, titled by its panel."""
        queries = generator.panel_queries(board, {})
        assert [title for title, _ in queries] == [item["title"] for item, _ in targets(board)]

    def test_recurses_into_collapsed_rows(self, generator: ModuleType) -> None:
        """Targets of panels inside a collapsed row are returned, with every form substituted."""
        inner = {
            "title": "inner",
            "targets": [{"expr": 'rate(x{a=~"$a", b="${b}"}[$__rate_interval]) offset $__range'}],
        }
        board = {
            "templating": {"list": [{"name": "a"}, {"name": "b"}]},
            "panels": [{"type": "row", "title": "row", "collapsed": True, "panels": [inner]}],
        }
        assert generator.panel_queries(board, {"a": "1"}) == [
            ("inner", 'rate(x{a=~"1", b=".*"}[1m]) offset 5m')
        ]

    def test_fills_grafana_intervals(self, generator: ModuleType) -> None:
        """``$__interval`` becomes 15s, ``$__rate_interval`` 1m and ``$__range`` 5m."""
        board = {
            "panels": [
                {"title": "t", "targets": [{"expr": "$__interval $__rate_interval $__range"}]}
            ]
        }
        assert generator.panel_queries(board, {}) == [("t", "15s 1m 5m")]

    def test_unknown_variable_is_an_error(self, generator: ModuleType) -> None:
        """A variable the dashboard does not define raises KeyError instead of passing through."""
        board = {"panels": [{"title": "t", "targets": [{"expr": 'x{a="$nope"}'}]}]}
        with pytest.raises(KeyError, match="nope"):
            generator.panel_queries(board, {})


class TestCheckers:
    """The helpers above must catch what the tests rely on them for."""

    def test_selectors_finds_metrics_not_functions_or_labels(self) -> None:
        """Metric names are found; functions, grouping labels, keywords and durations are not."""
        expr = (
            'sum by (pool) (rate(a_total{x=~"$x"}[$__rate_interval])) '
            "and on (instance) b or vector(0) > bool 1 offset 1m"
        )
        assert selectors(expr) == [("a_total", 'x=~"$x"'), ("b", "")]

    def test_overlaps_detects_intersecting_panels(self) -> None:
        """Two rectangles sharing a cell are reported; side by side ones are not."""
        a = {"id": 1, "gridPos": {"x": 0, "y": 0, "w": 12, "h": 4}}
        b = {"id": 2, "gridPos": {"x": 11, "y": 3, "w": 6, "h": 4}}
        c = {"id": 3, "gridPos": {"x": 12, "y": 0, "w": 12, "h": 3}}
        assert overlaps([a, b, c]) == [(1, 2)]

    def test_known_labels_include_recording_rules(self) -> None:
        """Recorded series carry their ``by`` labels, or the labels of the metric they read."""
        known = known_labels()
        where = {"project_id", "region"}
        assert known["modelarts:pool_jobs_waiting:sum"] == {*where, "pool", "type"}
        assert known["modelarts:pool_nodes_abnormal:sum"] == {*where, "pool", "flavor"}
        assert known["modelarts:poll_data_age:seconds"] == {*where, "api", "target"}
        assert "instance" in known["modelarts_poll_success"]
        assert "pool" in known["modelarts_pool_jobs"]


class TestJobStates:
    def test_live_and_finished_statuses_split_the_documented_ones(
        self, generator: ModuleType
    ) -> None:
        """Live and finished statuses are disjoint and together every documented status."""
        live, finished = set(generator.LIVE_STATUSES), set(generator.FINISHED_STATUSES)
        assert not live & finished
        assert live | finished == set(JOB_STATUSES)

    def test_pools_dashboard_plots_live_and_cumulative_apart(self) -> None:
        """The pools dashboard draws live states and cumulative ones in separate panels."""
        board = json.loads((DASHBOARD_DIR / "modelarts-pools.json").read_text(encoding="utf-8"))
        by_title = {item["title"]: item for item in panels(board)}
        live = by_title["Live jobs by pool and status"]["targets"][0]["expr"]
        finished = by_title["Finished jobs by pool and status (cumulative)"]["targets"][0]["expr"]
        assert '"queue|pending|creating|running|abnormal|terminating"' in live
        assert '"completed|terminated|failed"' in finished


class TestFleetAndAlerts:
    def test_fleet_links_open_the_pools_dashboard_with_its_variables(self) -> None:
        """Every data link of the fleet overview opens the pools dashboard and sets only
        variables that dashboard has."""
        fleet = json.loads((DASHBOARD_DIR / "modelarts-fleet.json").read_text(encoding="utf-8"))
        pools = json.loads((DASHBOARD_DIR / "modelarts-pools.json").read_text(encoding="utf-8"))
        links = [
            link
            for item in panels(fleet)
            for rule in item.get("fieldConfig", {}).get("overrides", [])
            for prop in rule["properties"]
            if prop["id"] == "links"
            for link in prop["value"]
        ]
        assert len(links) == 2
        for link in links:
            assert link["url"].startswith(f"/d/{pools['uid']}/")
            variables = set(re.findall(r"var-(\w+)=", link["url"]))
            assert {"datasource", "region", "project_id"} <= variables
            assert variables <= variable_names(pools)
        assert any("var-pool=${__value.raw}" in link["url"] for link in links)

    def test_pools_dashboard_annotates_firing_alerts(self) -> None:
        """The pools dashboard marks firing ModelArts alerts of the selected region, project
        and pool (or of the whole project) on its graphs."""
        board = json.loads((DASHBOARD_DIR / "modelarts-pools.json").read_text(encoding="utf-8"))
        (annotation,) = board["annotations"]["list"]
        expr = annotation["expr"]
        assert expr.startswith('ALERTS{alertstate="firing", alertname=~"ModelArts.+"')
        for matcher in ('region=~"$region"', 'project_id=~"$project_id"', 'pool=~"$pool|"'):
            assert matcher in expr
        assert annotation["datasource"] == DATASOURCE


class TestVariableQueries:
    def test_every_variable_query_is_read(self, generator: ModuleType, board: Board) -> None:
        """Each query variable is a ``label_values`` whose selector and label are found, the
        variables it depends on substituted."""
        found = generator.variable_queries(board, {"region": "cn-north-4"})
        names = [v["name"] for v in board["templating"]["list"] if v["type"] == "query"]
        assert [name for name, _, _ in found] == names
        selectors_by_name = {name: (selector, label) for name, selector, label in found}
        assert selectors_by_name["region"] == ("modelarts_up", "region")
        assert selectors_by_name["project_id"] == (
            'modelarts_up{region=~"cn-north-4"}',
            "project_id",
        )
