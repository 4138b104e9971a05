"""Pictures of the Grafana dashboards from a live local stack:
``python -m tests.support.screenshots``.

Starts the monitoring stack of ``tests/support/stack.py`` (simulator, two exporter replicas,
Prometheus with the rules 30 times faster, Alertmanager) with job counts drifting every
3 seconds, and lets it run about four minutes: calm, then trouble (abnormal and failed jobs, a
pool in phase Error, an exhausted accelerator spec, a failing pool, a slow one, throttled
spec queries), then the faults cleared. Then ``grafana/render.py`` draws every dashboard of
``grafana/dashboards/`` from that Prometheus into ``docs/images/<uid>.png`` (``--out``).

    python -m tests.support.screenshots [--out DIR] [--seconds 210]

The scenario is the fleet of ``tests/support/stack.py`` (``fleet_state``, ``fleet_targets``):
two projects in two regions.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporter.simulator import Fault, Simulator
from tests.support.scripts import renderer
from tests.support.stack import (
    FAST_SCALE,
    Stack,
    StackOptions,
    fleet_state,
    fleet_targets,
    running,
    wait_for,
)

__all__ = ["make_trouble", "options", "render", "run"]

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images"
#: Shares of the run: calm, trouble, recovery.
PHASES = (0.35, 0.45, 0.2)


def options() -> StackOptions:
    """The stack of the pictures: fast rules, two replicas, job counts drifting every 3 s."""
    return StackOptions(
        scale=FAST_SCALE,
        replicas=2,
        drift_every=3.0,
        scrape_interval="1s",
        setup=fleet_state,
        targets=fleet_targets,
    )


def _pool_info_arguments(item: Any, phase: str) -> dict[str, Any]:
    """``Simulator.set_pool_info`` keywords that serve ListPools ``item`` again, in ``phase``."""
    labels, spec = item["metadata"]["labels"], item["spec"]
    nodes = item["status"]["resources"]
    return {
        "display_name": labels["os.modelarts/name"],
        "pool_type": spec["type"],
        "workspace_id": labels["os.modelarts/workspace.id"],
        "phase": phase,
        "scope": spec["scope"],
        "resources": {r["flavor"]: (r["count"], r["maxCount"]) for r in spec["resources"]},
        "nodes": {state: {n["flavor"]: n["count"] for n in on} for state, on in nodes.items()},
    }


def make_trouble(sim: Simulator) -> list[Fault]:
    """Trouble in the first project with pools: abnormal and failed train jobs in its first
    pool, its second pool in phase Error, an accelerator spec exhausted, and faults (returned,
    for ``clear_faults``): the last pool failing (500), the second slow, specs throttled."""
    state = sim.snapshot_state()
    project = next(p for p in sorted(state.pools) if state.pools[p])
    pools = sorted(state.pools[project])
    counts = state.pools[project][pools[0]]
    train = counts.setdefault("train", {})
    train["Abnormal"] = train.get("Abnormal", 0) + 2
    train["Failed"] = train.get("Failed", 0) + 2
    sim.set_pool(project, pools[0], counts)
    infos = state.pool_info.get(project, {})
    if len(pools) > 1 and pools[1] in infos:
        sim.set_pool_info(project, pools[1], **_pool_info_arguments(infos[pools[1]], "Error"))
    for job_type, specs in state.specs.get(project, {}).items():
        accelerated = [s for s in specs if int(str(s.get("gpu_num") or 0)) > 0]
        if accelerated:
            accelerated[0]["no_resource"] = True
            sim.set_specs(project, job_type, specs)
            break
    faults = [
        Fault.server_error(500, path_contains=f"/pools/{pools[-1]}/"),
        Fault.slow(1.5, path_contains=f"/pools/{pools[len(pools) // 2]}/"),
        Fault.throttled(0.2, api="specs", times=40),
    ]
    for fault in faults:
        sim.inject(fault)
    return faults


def run(live: Stack, seconds: float) -> tuple[float, float]:
    """Calm, trouble, recovery over about ``seconds``; (start, end) unix times of the run."""
    wait_for(
        "both replicas scraped",
        lambda: len(live.query('up{job="modelarts-exporter"} == 1')) == 2,
    )
    start = time.time()
    calm, trouble, recovery = (share * seconds for share in PHASES)
    print(f"calm for {calm:.0f} s", flush=True)
    time.sleep(calm)
    print(f"trouble for {trouble:.0f} s", flush=True)
    faults = make_trouble(live.simulator)
    time.sleep(trouble)
    print(f"recovery for {recovery:.0f} s", flush=True)
    for fault in faults:
        live.simulator.clear_faults(fault)
    time.sleep(recovery)
    return start, time.time()


def render(prometheus_url: str, out: Path, start: float, end: float) -> None:
    """Every dashboard drawn from ``prometheus_url`` over [start, end] into ``out``."""
    minutes = (end - start) / 60
    arguments = ["--prometheus", prometheus_url, "--out", str(out)]
    renderer().main([*arguments, "--minutes", f"{minutes:.3f}", "--end", f"{end:.3f}"])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stack and its scenario, then draw the dashboards; exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT, help="default: %(default)s")
    parser.add_argument(
        "--seconds", type=float, default=210.0, help="length of the run (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    began = time.monotonic()
    with running(options()) as live:
        print(f"stack up: {live.prometheus_url}", flush=True)
        start, end = run(live, args.seconds)
        render(live.prometheus_url, args.out, start, end)
    print(f"done in {time.monotonic() - began:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
