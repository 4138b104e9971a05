"""Poll-cycle benchmark: N pools against a simulator that answers in 50 ms, concurrency 16.

The simulator runs in its own process (its CPU must not share the exporter's interpreter).
For each N the real ``modelarts-exporter`` process polls it at a short interval; the
benchmark reads, from the exporter's own /metrics:

- cycle wall time (``modelarts_exporter_poll_cycle_duration_seconds``) against the ideal
  ``ceil((N + job types) / 16) x 50 ms`` (plus one 50 ms step: each cycle sends one probe
  request alone before fanning out, see docs/configuration.md, "Credential safety");
- API requests per cycle (``modelarts_api_requests_total`` divided by cycles), which must be
  exactly pools + job types;
- exporter CPU seconds per request (``process_cpu_seconds_total`` over requests);
- /metrics p50/p99 (gzip, keep-alive) and RSS after the measured cycles.

    .venv/bin/python bench/poll_cycle.py [--pools 100 1000 5000] [--cycles 5] [--discovery]

``--discovery`` finds the pools through ListPools instead of listing them, refreshed every
cycle (``refresh_interval`` = ``poll_interval``): API requests per cycle must then be exactly
pools + job types + 1, and ListPools is each cycle's probe.

``--soak N_CYCLES`` measures memory growth instead: ``--soak-pools`` pools (default 1000),
simulator latency 0, ``poll_interval`` just above the cycle time (1.2 x a first, separate
cycle, at least 0.2 s). After 10 warm-up cycles it records RSS (VmRSS), skipped cycles and open
file descriptors, waits for N_CYCLES more cycles, and records them again.

    .venv/bin/python bench/poll_cycle.py --soak 1000 [--soak-pools 1000] [--discovery]
        [--soak-interval SECONDS] [--malloc-stats]

``--malloc-stats`` adds, at each reading, what CPython's small-object allocator holds: 1 MiB
arenas, the bytes in live blocks, and the bytes in wholly free pools of kept arenas (memory
that fragmentation holds). It runs the exporter through ``python -c`` with a SIGUSR1 handler
that calls ``sys._debugmallocstats()``; the exporter itself is unchanged.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import harness  # bench/harness.py: the scripts run from bench/

from exporter.simulator import Simulator, default_specs

PROJECT = "bc0c1ebc0c1ebc0c1ebc0c1ebc0c1ebc"
AK, SK = "BENCHCYCLEACCESSKEY0", "bench-cycle-secret"
LATENCY = 0.05
CONCURRENCY = 16
JOB_TYPES = ("train", "inference")
SOAK_WARM_UP = 10  # cycles before the first RSS reading
SOAK_MIN_INTERVAL = 0.2
CALIBRATION_INTERVAL = 600.0  # long enough that the calibration exporter runs one cycle


def serve(pools: int, latency: float, ready: multiprocessing.Queue[int], stop: EventType) -> None:
    simulator = Simulator(access_keys={AK: SK}, max_recorded_requests=10)
    for p in range(pools):
        simulator.set_pool(
            PROJECT,
            f"pool-{p:05d}",
            {
                "train": {"Running": 3, "Queue": 1},
                "infer": {"Running": 2},
                "notebook": {"Running": 1},
            },
        )
    for job_type in JOB_TYPES:
        simulator.set_specs(PROJECT, job_type, default_specs(job_type))
    simulator.set_latency(latency)
    with simulator:
        ready.put(simulator.port)
        stop.wait()


#: What the benchmark reads from the exporter's /metrics.
COUNTERS = (
    "modelarts_exporter_poll_cycles_total",
    "modelarts_exporter_skipped_cycles_total",
    "modelarts_exporter_poll_cycle_duration_seconds",
    "modelarts_api_requests_total",
    "process_cpu_seconds_total",
)


def scrape(port: int) -> dict[str, float]:
    """Each of ``COUNTERS`` on /metrics, summed over its labels."""
    return harness.totals(port, COUNTERS)


def scrape_latency(port: int, count: int) -> tuple[float, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        connection.getresponse().read()
        times.append(time.perf_counter() - started)
    connection.close()
    ordered = sorted(times)
    return statistics.median(ordered), ordered[round(0.99 * (len(ordered) - 1))]


@contextmanager
def running_simulator(pools: int, latency: float) -> Iterator[int]:
    """Run the simulator in its own process; yield its port."""
    ready: multiprocessing.Queue[int] = multiprocessing.Queue()
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(pools, latency, ready, stop), daemon=True)
    server.start()
    try:
        yield ready.get(timeout=120)
    finally:
        stop.set()
        server.join(timeout=10)


def write_config(
    path: Path, sim_port: int, pools: int, interval: float, discovery: bool = False
) -> None:
    target: dict[str, object] = {
        "project_id": PROJECT,
        "region": "cn-north-4",
        "endpoint": f"http://127.0.0.1:{sim_port}",
        "resource_specs": {"job_types": list(JOB_TYPES)},
    }
    if discovery:
        target["discovery"] = {"refresh_interval": f"{interval:.3f}s"}
    else:
        target["pools"] = [f"pool-{p:05d}" for p in range(pools)]
    path.write_text(
        json.dumps(
            {
                "poll_interval": f"{interval:.3f}s",
                "jitter": 0,
                "max_concurrency": CONCURRENCY,
                # The benchmark measures the concurrency bound, not the request budget.
                "requests_per_second": 100000,
                "timeout": "30s",
                "max_response_bytes": 64 * 1024 * 1024,
                "targets": [target],
            }
        )
    )


@contextmanager
def running_exporter(
    sim_port: int, pools: int, interval: float, discovery: bool = False, malloc_stats: bool = False
) -> Iterator[tuple[int, int, Callable[[], str]]]:
    """Run the real exporter against the simulator; yield its pid, /metrics port, and what
    its small-object allocator holds now ("" without ``malloc_stats``)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "config.yaml")
        write_config(config, sim_port, pools, interval, discovery)
        log = Path(tmp, "exporter.log")
        with harness.exporter_process(config, log, AK, SK, malloc_stats) as (process, port):

            def allocator() -> str:
                if not malloc_stats:
                    return ""
                found = harness.malloc_stats(process.pid, log)
                return (
                    f", pymalloc {found['arenas']} arenas: {found['used'] / 2**20:.1f} MB "
                    f"in use, {found['free_pools'] / 2**20:.1f} MB in free pools"
                )

            yield process.pid, port, allocator


def wait_for_cycles(port: int, cycles: float, every: float) -> dict[str, float]:
    """Scrape every ``every`` seconds until at least ``cycles`` cycles have completed."""
    while True:
        now = scrape(port)
        if now.get("modelarts_exporter_poll_cycles_total", 0.0) >= cycles:
            return now
        time.sleep(every)


def rss_mb(pid: int) -> float:
    return harness.proc_status(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    return harness.proc_status(pid, "VmHWM") / 1024


def run(pools: int, cycles: int, discovery: bool = False) -> dict[str, float]:
    items = pools + len(JOB_TYPES)
    ideal = (math.ceil(items / CONCURRENCY) + 1) * LATENCY
    interval = max(1.0, 3 * ideal)
    with (
        running_simulator(pools, LATENCY) as sim_port,
        running_exporter(sim_port, pools, interval, discovery) as (pid, port, _),
    ):
        durations: list[float] = []
        first = None
        while len(durations) < cycles + 1:
            time.sleep(interval / 4)
            now = scrape(port)
            done = now.get("modelarts_exporter_poll_cycles_total", 0)
            if done >= 1 and first is None:
                first = now  # exclude the first cycle (imports, connection set-up)
            if (
                first is not None
                and done > len(durations) + first["modelarts_exporter_poll_cycles_total"] - 1
            ):
                durations.append(now["modelarts_exporter_poll_cycle_duration_seconds"])
        assert first is not None
        last = scrape(port)
        measured = (
            last["modelarts_exporter_poll_cycles_total"]
            - first["modelarts_exporter_poll_cycles_total"]
        )
        requests = last["modelarts_api_requests_total"] - first["modelarts_api_requests_total"]
        cpu = last["process_cpu_seconds_total"] - first["process_cpu_seconds_total"]
        p50, p99 = scrape_latency(port, 200)
        rss = rss_mb(pid)
    cycle = statistics.median(durations[1:])
    return {
        "pools": pools,
        "cycle_s": cycle,
        "ideal_s": ideal,
        "ratio": cycle / ideal,
        "calls_per_cycle": requests / measured,
        "expected_calls": items + (1 if discovery else 0),
        "cpu_ms_per_request": 1000 * cpu / requests,
        "metrics_p50_ms": 1000 * p50,
        "metrics_p99_ms": 1000 * p99,
        "rss_mb": rss,
    }


def soak(
    pools: int,
    cycles: int,
    discovery: bool = False,
    interval: float | None = None,
    malloc_stats: bool = False,
) -> None:
    """RSS, skipped cycles and open fds after the warm-up and after ``cycles`` more cycles,
    at ``interval`` (default: calibrated from a first cycle)."""
    print(
        f"soak: {pools} pools, simulator latency 0 ms, max_concurrency {CONCURRENCY}, "
        f"{os.cpu_count()} cores, discovery {'on' if discovery else 'off'}",
        flush=True,
    )
    with running_simulator(pools, 0.0) as sim_port:
        if interval is None:
            with running_exporter(sim_port, pools, CALIBRATION_INTERVAL, discovery) as (_, port, _):
                first = wait_for_cycles(port, 1, 0.1)[
                    "modelarts_exporter_poll_cycle_duration_seconds"
                ]
            interval = max(SOAK_MIN_INTERVAL, 1.2 * first)
            print(f"first cycle {first:.3f} s -> poll_interval {interval:.3f}s", flush=True)
        else:
            print(f"poll_interval {interval:.3f}s", flush=True)
        with running_exporter(sim_port, pools, interval, discovery, malloc_stats) as (
            pid,
            port,
            allocator,
        ):
            warm = wait_for_cycles(port, SOAK_WARM_UP, 1.0)
            started = time.monotonic()
            warm_rss, warm_fds = rss_mb(pid), harness.open_fds(pid)
            warm_cycles = warm["modelarts_exporter_poll_cycles_total"]
            print(
                f"after warm-up ({warm_cycles:.0f} cycles): RSS {warm_rss:.1f} MB, "
                f"skipped {warm['modelarts_exporter_skipped_cycles_total']:.0f}, "
                f"open fds {warm_fds}{allocator()}",
                flush=True,
            )
            # RSS every tenth of the run: a leak climbs steadily, allocator high-water not.
            for step in range(1, 10):
                at = wait_for_cycles(port, warm_cycles + cycles * step / 10, 1.0)
                print(
                    f"  cycle {at['modelarts_exporter_poll_cycles_total'] - warm_cycles:.0f}: "
                    f"RSS {rss_mb(pid):.1f} MB{allocator()}",
                    flush=True,
                )
            end = wait_for_cycles(port, warm_cycles + cycles, 1.0)
            end_rss, end_fds, peak = rss_mb(pid), harness.open_fds(pid), peak_rss_mb(pid)
            elapsed = time.monotonic() - started
            end_allocator = allocator()
    done = end["modelarts_exporter_poll_cycles_total"] - warm_cycles
    growth = 100 * (end_rss - warm_rss) / warm_rss
    print(
        f"pools {pools}, cycles {done:.0f} after warm-up, {elapsed:.0f} s "
        f"({elapsed / done:.3f} s/cycle)\n"
        f"RSS after warm-up {warm_rss:.1f} MB, at end {end_rss:.1f} MB, "
        f"growth {growth:+.1f} % (peak VmHWM {peak:.1f} MB)\n"
        f"skipped cycles after warm-up "
        f"{warm['modelarts_exporter_skipped_cycles_total']:.0f}, "
        f"at end {end['modelarts_exporter_skipped_cycles_total']:.0f}\n"
        f"open fds after warm-up {warm_fds}, at end {end_fds}{end_allocator}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--cycles", type=int, default=5, help="measured cycles per N")
    parser.add_argument(
        "--soak",
        type=int,
        metavar="N_CYCLES",
        help="instead: RSS growth over N_CYCLES cycles after a warm-up",
    )
    parser.add_argument("--soak-pools", type=int, default=1000, help="pools in --soak mode")
    parser.add_argument(
        "--soak-interval",
        type=float,
        metavar="SECONDS",
        help="poll_interval in --soak mode (default: 1.2 x a first cycle, at least 0.2 s)",
    )
    parser.add_argument(
        "--discovery", action="store_true", help="find the pools through ListPools every cycle"
    )
    parser.add_argument(
        "--malloc-stats",
        action="store_true",
        help="in --soak mode, also print what CPython's small-object allocator holds",
    )
    args = parser.parse_args()
    if args.soak:
        soak(args.soak_pools, args.soak, args.discovery, args.soak_interval, args.malloc_stats)
        return 0
    print(
        f"simulator latency {LATENCY * 1000:.0f} ms, max_concurrency {CONCURRENCY}, "
        f"{os.cpu_count()} cores, discovery {'on' if args.discovery else 'off'}"
    )
    header = ("pools", "cycle", "ideal", "ratio", "calls/cycle", "cpu/req", "p50", "p99", "RSS")
    print("{:>6} {:>8} {:>8} {:>6} {:>12} {:>9} {:>8} {:>8} {:>8}".format(*header))
    for pools in args.pools:
        r = run(pools, args.cycles, args.discovery)
        print(
            f"{r['pools']:>6.0f} {r['cycle_s']:>7.2f}s {r['ideal_s']:>7.2f}s "
            f"{r['ratio']:>6.2f} {r['calls_per_cycle']:>6.0f} (={r['expected_calls']:.0f}) "
            f"{r['cpu_ms_per_request']:>6.2f}ms {r['metrics_p50_ms']:>6.2f}ms "
            f"{r['metrics_p99_ms']:>6.2f}ms {r['rss_mb']:>6.1f}MB",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
