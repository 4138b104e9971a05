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

Each dashboard is built by a module of its own beside this one (``fleet.py``, ``pools.py``,
``capacity.py``, ``exporter_health.py``) from the building blocks of ``panels.py`` (panels),
``board.py`` (layout, variables, the dashboard around the panels) and ``series.py`` (what
several dashboards query); ``queries.py`` fills the variables of a query in. This module
writes and checks the files, and is what the tests load: it re-exports what they use.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from board import SCHEMA_VERSION
from capacity import capacity_dashboard
from exporter_health import exporter_dashboard
from fleet import fleet_dashboard
from panels import Json
from pools import FINISHED_STATUSES, LIVE_STATUSES, pools_dashboard
from queries import GRAFANA_MACROS, expand, panel_queries, variable_queries

__all__ = [
    "DASHBOARDS",
    "FINISHED_STATUSES",
    "GRAFANA_MACROS",
    "LIVE_STATUSES",
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

OUT_DIR = Path(__file__).resolve().parent / "dashboards"


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
