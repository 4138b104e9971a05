"""The ``modelarts-exporter`` dashboard: the exporter's own health (polls, API calls,
errors, process).
"""

from __future__ import annotations

from board import LOCATION, dashboard, query_variable
from panels import (
    Json,
    count_stat,
    field_config,
    fixed_color,
    once,
    organize,
    override,
    reference_line,
    row,
    sel,
    stat,
    state_timeline,
    table,
    target,
    thresholds,
    timeseries,
    value_mappings,
)
from series import PER_ITEM, PER_PROJECT, REACHABLE

__all__ = ["exporter_dashboard"]


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
                mappings=value_mappings(REACHABLE),
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
