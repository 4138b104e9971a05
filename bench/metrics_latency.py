"""/metrics latency: our cached server vs prometheus_client's own server, same data, same run.

For 10, 100 and 1000 pools (3 job types x 9 statuses each, plus two job types' resource
specs), both servers answer sequential scrapes over one keep-alive connection:

- ours: ``exporter.server.MetricsServer`` serving the bytes the exposition cache rendered once;
- baseline: ``prometheus_client.start_http_server`` with the same collector, which renders on
  every scrape (what an exporter built the usual way does).

Then the RSS of the real ``modelarts-exporter`` process after it has polled 1000 simulated
pools a few times. Prints p50/p99 per server and the ratio baseline/ours.

    .venv/bin/python bench/metrics_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import harness  # bench/harness.py: the scripts run from bench/
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    start_http_server,
)

from exporter.collector import SnapshotCollector
from exporter.exposition import ExpositionCache, process_metrics
from exporter.models import (
    JOB_STATUSES,
    Api,
    CycleStats,
    ItemKey,
    ItemState,
    JobTypeStatistics,
    ResourceSpec,
    ResourceSpecs,
    Snapshot,
    WorkloadStatistics,
)
from exporter.server import MetricsServer
from exporter.simulator import Simulator, default_specs

PROJECT = "be0c4be0c4be0c4be0c4be0c4be0c4be"


def synthetic_snapshot(pools: int, now: float) -> Snapshot:
    """``pools`` pools with 3 job types x 9 statuses each, and 2 x 6 resource specs."""
    items: list[ItemState] = []
    for p in range(pools):
        job_types = tuple(
            JobTypeStatistics(
                t, 45.0, tuple((s, float((p + i) % 7)) for i, s in enumerate(JOB_STATUSES))
            )
            for t in ("train", "infer", "notebook")
        )
        key = ItemKey(PROJECT, Api.WORKLOAD_STATISTICS, f"pool-{p:05d}")
        items.append(ItemState(key, True, 0.05, now, WorkloadStatistics(job_types)))
    for job_type in ("train", "inference"):
        specs = tuple(
            ResourceSpec(
                f"modelarts.vm.gpu.{i}",
                str(i),
                "v100",
                "",
                "1",
                i % 2 == 0,
                1.0,
                8.0,
                64.0,
                4.0,
                1.0,
            )
            for i in range(6)
        )
        key = ItemKey(PROJECT, Api.RESOURCE_SPECS, job_type)
        items.append(ItemState(key, True, 0.05, now, ResourceSpecs(6.0, specs)))
    return Snapshot(
        60.0,
        180.0,
        tuple(items),
        ((PROJECT, True),),
        regions=((PROJECT, "cn-north-4"),),
        cycles=((PROJECT, CycleStats(cycles=1)),),
    )


def scrape_times(port: int, count: int, gzip: bool) -> list[float]:
    """Seconds per sequential scrape over one keep-alive connection (body fully read)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    times = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        body = response.read()
        times.append(time.perf_counter() - started)
        assert response.status == 200
        assert body
    connection.close()
    return times


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def compare(pools: int, quick: bool) -> dict[str, object]:
    now = time.time()
    snapshot = synthetic_snapshot(pools, now)
    cache = ExpositionCache(snapshot, time.time, process_metrics())
    ours = MetricsServer("127.0.0.1:0", cache.payload, lambda: True)
    ours.start()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, now))
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)  # what our server adds per scrape, for a fair match
    baseline_server, baseline_thread = start_http_server(0, "127.0.0.1", registry)
    baseline_port = baseline_server.server_address[1]
    runs = 20 if quick else 60
    result: dict[str, object] = {"pools": pools, "bytes": len(cache.current().text.plain)}
    try:
        for gzip in (False, True):
            scrape_times(ours.port, 5, gzip)  # warm up both
            scrape_times(baseline_port, 2, gzip)
            mine = percentiles(scrape_times(ours.port, runs * 10, gzip))
            base = percentiles(scrape_times(baseline_port, runs, gzip))
            result["gzip" if gzip else "plain"] = {
                "ours_p50_ms": mine[0] * 1e3,
                "ours_p99_ms": mine[1] * 1e3,
                "baseline_p50_ms": base[0] * 1e3,
                "baseline_p99_ms": base[1] * 1e3,
                "p50_ratio": base[0] / mine[0],
            }
    finally:
        ours.stop()
        baseline_server.shutdown()
        baseline_thread.join(timeout=5)
    return result


#: The access key and secret key the exporter and the simulator share.
KEY = ("BENCHAK0000000000000", "bench-sk")


def exporter_rss(pools: int) -> dict[str, float]:
    """RSS (MB) of the real exporter process after 3 cycles over ``pools`` simulated pools."""
    names = [f"pool-{p:05d}" for p in range(pools)]
    with Simulator(access_keys=dict([KEY])) as simulator:
        for name in names:
            simulator.set_pool(
                PROJECT,
                name,
                {"train": {"Running": 3}, "infer": {"Queue": 1}, "notebook": {"Running": 1}},
            )
        for job_type in ("train", "inference"):
            simulator.set_specs(PROJECT, job_type, default_specs(job_type))
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp, "config.yaml")
            config.write_text(
                json.dumps(
                    {
                        "poll_interval": "5s",
                        "max_concurrency": 16,
                        "requests_per_second": 100000,
                        "targets": [
                            {
                                "project_id": PROJECT,
                                "region": "cn-north-4",
                                "endpoint": simulator.url,
                                "pools": names,
                                "resource_specs": {"job_types": ["train", "inference"]},
                            }
                        ],
                    }
                )
            )
            log = Path(tmp, "exporter.log")
            with harness.exporter_process(config, log, *KEY) as (process, _):
                deadline = time.monotonic() + 120
                while sum(1 for r in simulator.requests() if "workloads" in r.path) < 3 * pools:
                    assert time.monotonic() < deadline, "exporter did not poll 3 cycles"
                    assert process.poll() is None, "exporter exited"
                    time.sleep(0.2)
                time.sleep(1.0)
                return {
                    "rss_mb": harness.proc_status(process.pid, "VmRSS") / 1024,
                    "peak_rss_mb": harness.proc_status(process.pid, "VmHWM") / 1024,
                }


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer scrapes (rougher p99)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"{'pools':>6} {'enc':>5} {'bytes':>9} {'ours p50':>9} {'ours p99':>9} "
        f"{'base p50':>9} {'base p99':>9} {'p50 ratio':>10}"
    )
    for pools in (10, 100, 1000):
        result = compare(pools, args.quick)
        for enc in ("plain", "gzip"):
            r = result[enc]
            assert isinstance(r, dict)
            print(
                f"{pools:>6} {enc:>5} {result['bytes']:>9} {r['ours_p50_ms']:>7.3f}ms "
                f"{r['ours_p99_ms']:>7.3f}ms {r['baseline_p50_ms']:>7.2f}ms "
                f"{r['baseline_p99_ms']:>7.2f}ms {r['p50_ratio']:>9.0f}x"
            )
    rss = exporter_rss(1000)
    print(
        f"exporter RSS after 3 cycles over 1000 pools: {rss['rss_mb']:.1f} MB "
        f"(peak {rss['peak_rss_mb']:.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
