"""The ``modelarts-capacity`` dashboard: resource specs, and which of them have run out."""

from __future__ import annotations

from board import LOCATION, dashboard, query_variable
from panels import (
    Json,
    coloured_cells,
    count_stat,
    merged,
    once,
    override,
    row,
    sel,
    state_timeline,
    table,
    target,
    thresholds,
)

__all__ = ["capacity_dashboard"]

_AVAILABILITY = {0: ("available", "green"), 1: ("exhausted", "red")}
PER_SPEC = "project_id, region, job_type, spec_code"


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
