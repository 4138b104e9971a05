"""Render benchmark: the text format written directly vs prometheus_client, same snapshot.

For 100, 1000 and 5000 pools (the synthetic snapshot of ``metrics_latency.py``: 3 job types
x 9 statuses per pool, plus resource specs), each renderer makes the /metrics text of the
same snapshot:

- ours: ``exporter.collector.render_text`` (``exporter.textformat``), what the exporter serves;
- baseline: ``prometheus_client.generate_latest`` over ``SnapshotCollector``, the same families
  as prometheus_client objects (what the exporter did before).

Prints the median wall time per render and the peak of Python memory allocated during one
render (tracemalloc, in a separate pass: tracing slows everything down), with the ratio
baseline/ours. The outputs are checked to be the same bytes first.

    .venv/bin/python bench/render.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable

from metrics_latency import machine, synthetic_snapshot  # bench/: the scripts run from there
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from exporter.collector import SnapshotCollector, render_text
from exporter.models import Snapshot

Renderer = Callable[[Snapshot, float], bytes]


def baseline(snapshot: Snapshot, now: float) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, now))
    return generate_latest(registry)


def median_seconds(render: Renderer, snapshot: Snapshot, now: float, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        render(snapshot, now)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def peak_bytes(render: Renderer, snapshot: Snapshot, now: float) -> int:
    """Peak of Python memory allocated during one render, above what was there before."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        render(snapshot, now)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer renders per size")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"{'pools':>6} {'bytes':>9} {'ours':>9} {'base':>9} {'ratio':>6} "
        f"{'ours peak':>10} {'base peak':>10} {'ratio':>6}"
    )
    for pools in (100, 1000, 5000):
        now = time.time()
        snapshot = synthetic_snapshot(pools, now)
        text = render_text(snapshot, now)
        assert text == baseline(snapshot, now), "the renderers disagree"
        runs = max(3, (10 if args.quick else 40) * 1000 // pools)
        ours = median_seconds(render_text, snapshot, now, runs)
        base = median_seconds(baseline, snapshot, now, runs)
        ours_peak = peak_bytes(render_text, snapshot, now)
        base_peak = peak_bytes(baseline, snapshot, now)
        print(
            f"{pools:>6} {len(text):>9} {ours * 1e3:>7.1f}ms {base * 1e3:>7.1f}ms "
            f"{base / ours:>5.1f}x {ours_peak / 2**20:>8.1f}MB {base_peak / 2**20:>8.1f}MB "
            f"{base_peak / ours_peak:>5.1f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
