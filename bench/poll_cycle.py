"""Poll-cycle benchmark: N pools against a simulator that answers in 50 ms, concurrency 16.

The simulator runs in its own process (its CPU must not share the exporter's interpreter).
For each N the real ``modelarts-exporter`` process polls it at a short interval; the
benchmark reads, from the exporter's own /metrics:

- cycle wall time (``modelarts_exporter_poll_cycle_duration_seconds``) against the ideal
  ``ceil((N + job types) / 16) x 50 ms`` (plus one 50 ms step: each cycle sends one probe
  request alone before fanning out, see README "Credential safety");
- API requests per cycle (``modelarts_api_requests_total`` divided by cycles), which must be
  exactly pools + job types;
- exporter CPU seconds per request (``process_cpu_seconds_total`` over requests);
- /metrics p50/p99 (gzip, keep-alive) and RSS after the measured cycles.

    .venv/bin/python bench/poll_cycle.py [--pools 100 1000 5000] [--cycles 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from exporter.simulator import Simulator, default_specs

PROJECT = "bc0c1ebc0c1ebc0c1ebc0c1ebc0c1ebc"
AK, SK = "BENCHCYCLEACCESSKEY0", "bench-cycle-secret"
LATENCY = 0.05
CONCURRENCY = 16
JOB_TYPES = ("train", "inference")


def serve(pools: int, ready: multiprocessing.Queue[int], stop: EventType) -> None:
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
    simulator.set_latency(LATENCY)
    with simulator:
        ready.put(simulator.port)
        stop.wait()


def scrape(port: int) -> dict[str, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


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


def run(pools: int, cycles: int) -> dict[str, float]:
    ready: multiprocessing.Queue[int] = multiprocessing.Queue()
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(pools, ready, stop), daemon=True)
    server.start()
    sim_port = ready.get(timeout=120)
    items = pools + len(JOB_TYPES)
    ideal = (math.ceil(items / CONCURRENCY) + 1) * LATENCY
    interval = max(1.0, 3 * ideal)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "config.yaml")
        config.write_text(
            json.dumps(
                {
                    "poll_interval": f"{interval}s",
                    "jitter": 0,
                    "max_concurrency": CONCURRENCY,
                    # The benchmark measures the concurrency bound, not the request budget.
                    "requests_per_second": 100000,
                    "timeout": "30s",
                    "max_response_bytes": 64 * 1024 * 1024,
                    "targets": [
                        {
                            "project_id": PROJECT,
                            "region": "cn-north-4",
                            "endpoint": f"http://127.0.0.1:{sim_port}",
                            "pools": [f"pool-{p:05d}" for p in range(pools)],
                            "resource_specs": {"job_types": list(JOB_TYPES)},
                        }
                    ],
                }
            )
        )
        log = Path(tmp, "exporter.log")
        env = {**os.environ, "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
        command = [
            str(Path(sys.executable).with_name("modelarts-exporter")),
            f"--config.file={config}",
            "--web.listen-address=127.0.0.1:0",
            "--log.format=json",
            "--log.level=info",
        ]
        with log.open("w") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            port = 0
            while not port:
                for line in log.read_text().splitlines():
                    entry = json.loads(line)
                    if entry.get("event") == "exporter_started":
                        port = int(entry["port"])
                time.sleep(0.05)
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
            rss = Path(f"/proc/{process.pid}/status").read_text()
            rss_mb = int(rss.split("VmRSS:")[1].split()[0]) / 1024
        finally:
            process.terminate()
            process.wait(timeout=30)
            stop.set()
            server.join(timeout=10)
    cycle = statistics.median(durations[1:])
    return {
        "pools": pools,
        "cycle_s": cycle,
        "ideal_s": ideal,
        "ratio": cycle / ideal,
        "calls_per_cycle": requests / measured,
        "expected_calls": items,
        "cpu_ms_per_request": 1000 * cpu / requests,
        "metrics_p50_ms": 1000 * p50,
        "metrics_p99_ms": 1000 * p99,
        "rss_mb": rss_mb,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--cycles", type=int, default=5, help="measured cycles per N")
    args = parser.parse_args()
    print(
        f"simulator latency {LATENCY * 1000:.0f} ms, max_concurrency {CONCURRENCY}, "
        f"{os.cpu_count()} cores"
    )
    header = ("pools", "cycle", "ideal", "ratio", "calls/cycle", "cpu/req", "p50", "p99", "RSS")
    print("{:>6} {:>8} {:>8} {:>6} {:>12} {:>9} {:>8} {:>8} {:>8}".format(*header))
    for pools in args.pools:
        r = run(pools, args.cycles)
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
