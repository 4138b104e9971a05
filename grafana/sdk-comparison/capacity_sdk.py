"""The capacity dashboard rewritten with grafana-foundation-sdk, as a measurement.

Not used by the project: neither ``generate.py`` nor the tests import it (CI only lints it),
and the SDK is not one of the project's dependencies. It exists so that ``measure.py`` beside
it can reproduce the figures of the comparison in ``grafana/README.md`` (lines of code, the
JSON it writes). It mirrors ``grafana/capacity.py`` and the helpers that dashboard uses; run
on its own it prints the dashboard's JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

# --- shared helpers (the SDK has no equivalent: PromQL and our conventions) ---------------

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
LOCATION = ("region", "project_id")
PER_SPEC = "project_id, region, job_type, spec_code"
ALL = ".*"


def sel(metric: str, labels: tuple[str, ...], *extra: str) -> str:
    matchers = [f'{label}=~"${label}"' for label in labels]
    return f"{metric}{{{', '.join([*matchers, *extra])}}}"


def once(selector: str, labels: str) -> str:
    return f"max by ({labels}) ({selector})"


def target(
    expr: str, legend: str = "", ref_id: str = "", *, table: bool = False
) -> prometheus.Dataquery:
    query = (
        prometheus.Dataquery()
        .expr(expr)
        .datasource(DS)
        .editor_mode(pm.QueryEditorMode.CODE)
        .exemplar(False)
        .format(pm.PromQueryFormat.TABLE if table else pm.PromQueryFormat.TIME_SERIES)
        .legend_format(legend)
    )
    query = query.ref_id(ref_id or "A")
    return query.instant() if table else query.range()


def steps(base: str, *more: tuple[float, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(None, base), *(dm.Threshold(v, c) for v, c in more)])
    )


def value_map(texts: dict[int, tuple[str, str]]) -> dm.ValueMap:
    return dm.ValueMap(
        options={
            str(value): dm.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, (text, color)) in enumerate(sorted(texts.items()))
        }
    )


def count_stat(
    title: str, description: str, expr: str, thresholds: db.ThresholdsConfig, legend: str
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .with_target(target(expr, legend))
        .span(6)
        .height(4)
        .unit("short")
        .decimals(0)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .thresholds(thresholds)
        .mappings([])
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .justify_mode(cm.BigValueJustifyMode.AUTO)
        .orientation(cm.VizOrientation.AUTO)
        .text_mode(cm.BigValueTextMode.AUTO)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
    )


def query_variable(name: str, label: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(
            {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"}
        )
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .hide(dm.VariableHide.DONT_HIDE)
        .regex("")
        .multi(True)
        .include_all(True)
        .all_value(ALL)
    )


def dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["modelarts"])
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .timezone("")
        .refresh("1m")
        .fiscal_year_start_month(0)
        .live_now(False)
        .week_start("")
        .version(1)
        .link(
            db.DashboardLink("ModelArts")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["modelarts"])
            .as_dropdown(False)
            .icon("external link")
            .include_vars(True)
            .keep_time(True)
            .target_blank(False)
            .tooltip("")
            .url("")
        )
        .with_variable(
            db.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .multi(False)
            .include_all(False)
            .regex("")
            .hide(dm.VariableHide.DONT_HIDE)
        )
        .with_variable(query_variable("region", "Region", "label_values(modelarts_up, region)"))
        .with_variable(
            query_variable(
                "project_id",
                "Project",
                f"label_values({sel('modelarts_up', ('region',))}, project_id)",
            )
        )
    )


# --- the capacity dashboard ------------------------------------------------------------

_AVAILABILITY = {0: ("available", "green"), 1: ("exhausted", "red")}


def capacity_dashboard() -> dm.Dashboard:
    bound = (*LOCATION, "job_type")
    spec = "modelarts_spec_no_resource"

    def spec_column(metric: str, ref_id: str, extra_label: str = "") -> prometheus.Dataquery:
        return target(
            f"max by ({PER_SPEC}{extra_label}) ({sel(metric, bound)})", ref_id=ref_id, table=True
        )

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
    board = (
        dashboard(
            "modelarts-capacity",
            "ModelArts / Capacity",
            "ModelArts job resource specs and their availability (modelarts-exporter).",
        )
        .with_variable(
            query_variable("job_type", "Job type", f"label_values({sel(spec, LOCATION)}, job_type)")
        )
        .with_row(db.Row("Now"))
        .with_panel(
            count_stat(
                "Specs exhausted",
                "Specs for which ModelArts reports no resources left (recording rule "
                "modelarts:specs_no_resource:count).",
                f"sum({sel('modelarts:specs_no_resource:count', bound)})",
                steps("green", (1, "orange")),
                "specs",
            )
        )
        .with_panel(
            count_stat(
                "Accelerator specs exhausted",
                "GPU/NPU specs with no resources left: new jobs on them cannot start. The "
                "ModelArtsAcceleratorSpecExhausted alert fires after 15 minutes.",
                f"sum({specs} * on ({PER_SPEC}) "
                f"({once(sel('modelarts_spec_gpus', bound), PER_SPEC)} > bool 0))",
                steps("green", (1, "red")),
                "specs",
            )
        )
        .with_panel(
            count_stat(
                "Specs available",
                "Specs that still have resources.",
                f"sum(1 - {specs})",
                steps("blue"),
                "specs",
            )
        )
        .with_panel(
            count_stat(
                "Specs offered",
                "Specs ModelArts lists for the selected job types (spec_total_count).",
                f"sum({once(sel('modelarts_specs', bound), 'project_id, region, job_type')})",
                steps("blue"),
                "specs",
            )
        )
        .with_panel(
            table.Panel()
            .title("Resource specs")
            .description(
                "Every spec of the selected job types: accelerators, cores and memory per node, "
                "the node limit, and whether ModelArts has run out of it."
            )
            .datasource(DS)
            .targets(
                [
                    spec_column("modelarts_spec_info", "info", ", gpu_type"),
                    spec_column("modelarts_spec_gpus", "gpus"),
                    spec_column("modelarts_spec_cpu_cores", "cores"),
                    spec_column("modelarts_spec_memory_bytes", "memory"),
                    spec_column("modelarts_spec_max_nodes", "max_nodes"),
                    spec_column(spec, "no_resource"),
                ]
            )
            .span(24)
            .height(10)
            .unit("short")
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .thresholds(steps("green"))
            .mappings([])
            .align(cm.FieldTextAlignment.AUTO)
            .cell_options(cm.TableAutoCellOptions())
            .inspect(False)
            .cell_height(cm.TableCellHeight.SM)
            .footer(
                cb.TableFooterOptions().count_rows(False).fields([]).reducer(["sum"]).show(False)
            )
            .show_header(True)
            .sort_by([cb.TableSortByFieldState().desc(False).display_name("Spec code")])
            .transformations(
                [
                    dm.DataTransformerConfig(id_val="merge", options={}),
                    dm.DataTransformerConfig(
                        id_val="organize",
                        options={
                            "excludeByName": {"Time": True, "Value #info": True},
                            "indexByName": {name: index for index, name in enumerate(columns)},
                            "renameByName": columns,
                        },
                    ),
                ]
            )
            .override_by_name("Memory", [dm.DynamicConfigValue("unit", "bytes")])
            .override_by_name(
                "GPU type",
                [
                    dm.DynamicConfigValue(
                        "mappings",
                        [
                            dm.SpecialValueMap(
                                options=dm.DashboardSpecialValueMapOptions(
                                    match=dm.SpecialValueMatch.EMPTY,
                                    result=dm.ValueMappingResult(text="-"),
                                )
                            )
                        ],
                    )
                ],
            )
            .override_by_name(
                "No resource",
                [
                    dm.DynamicConfigValue(
                        "custom.cellOptions", cm.TableColoredBackgroundCellOptions()
                    ),
                    dm.DynamicConfigValue("mappings", [value_map(_AVAILABILITY)]),
                ],
            )
        )
        .with_row(db.Row("History"))
        .with_panel(
            statetimeline.Panel()
            .title("History of no_resource flips")
            .description("When each spec ran out (red) and came back (green).")
            .datasource(DS)
            .with_target(
                target(
                    f"max by ({PER_SPEC}) ({sel(spec, bound)})",
                    "{{spec_code}} ({{job_type}}, {{region}})",
                )
            )
            .span(24)
            .height(12)
            .unit("short")
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .thresholds(steps("green"))
            .mappings([value_map(_AVAILABILITY)])
            .fill_opacity(80)
            .line_width(0)
            .align_value(cm.TimelineValueAlignment.LEFT)
            .legend(
                cb.VizLegendOptions()
                .display_mode(cm.LegendDisplayMode.LIST)
                .placement(cm.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .merge_values(True)
            .row_height(0.9)
            .show_value(cm.VisibilityMode.NEVER)
            .tooltip(
                cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.SINGLE).sort(cm.SortOrder.NONE)
            )
        )
    )
    built = board.build()
    built.schema_version = 39  # no builder method: the SDK's model says 36
    for number, item in enumerate(built.panels or [], start=1):  # the SDK numbers no panel
        item.id_val = number
    return built


def as_json(board: dm.Dashboard) -> Any:
    return json.loads(json.dumps(board, cls=JSONEncoder))


if __name__ == "__main__":
    json.dump(as_json(capacity_dashboard()), sys.stdout, indent=2)
    print()
