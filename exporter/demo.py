"""``modelarts-exporter demo``: the built-in simulator and the exporter in one process.

Job counts drift every few seconds, so a newcomer sees live metrics without a cloud account.
"""

from __future__ import annotations

import asyncio
import random
import threading

from structlog.typing import FilteringBoundLogger

from exporter import app
from exporter.config import AkSkCredentials, Config, Discovery, RetryPolicy, Secret, Target
from exporter.server import parse_listen_address
from exporter.simulator import Simulator

__all__ = ["DEMO_POOLS", "DEMO_PROJECT", "demo_config", "run_demo"]

DEMO_PROJECT = "0de70de70de70de70de70de70de70de7"
DEMO_POOLS = ("pool-train-a100", "pool-infer-snt9b", "pool-notebooks")
DEMO_JOB_TYPES = ("train", "inference")
_DEMO_AK = "DEMOACCESSKEY0000000"
_DEMO_SK = "demo-secret-key-not-a-real-one"


def demo_config(endpoint: str, interval: float) -> Config:
    """A config polling the simulator at ``endpoint`` with the demo's key; the pools are
    found through ListPools, refreshed every other interval."""
    credentials = AkSkCredentials(Secret(_DEMO_AK, "demo"), Secret(_DEMO_SK, "demo"))
    target = Target(
        project_id=DEMO_PROJECT,
        region="cn-north-4",
        endpoint=endpoint,
        iam_endpoint=endpoint,
        pools=(),
        job_types=DEMO_JOB_TYPES,
        credentials=credentials,
        max_concurrency=4,
        discovery=Discovery(refresh_interval=2 * interval),
    )
    return Config(
        poll_interval=interval,
        stale_after=3 * interval,
        jitter=0.0,
        timeout=5.0,
        max_concurrency=4,
        max_response_bytes=4 * 1024 * 1024,
        retry=RetryPolicy(max_attempts=2, initial_backoff=0.2, max_backoff=2.0),
        targets=(target,),
    )


def _metrics_url(listen_address: str, port: int) -> str:
    host = parse_listen_address(listen_address)[0] or "localhost"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"


def run_demo(
    listen_address: str, log: FilteringBoundLogger, interval: float = 5.0, seed: int | None = None
) -> int:
    """Run simulator + exporter until SIGINT/SIGTERM; return the exporter's exit code."""
    rng = random.Random(seed)
    simulator = Simulator(access_keys={_DEMO_AK: _DEMO_SK})
    simulator.seed_demo(DEMO_PROJECT, DEMO_POOLS, rng)
    simulator.start()
    stop_drift = threading.Event()

    def drift() -> None:
        while not stop_drift.wait(interval):
            simulator.drift(rng)

    drifter = threading.Thread(target=drift, name="demo-drift", daemon=True)
    drifter.start()

    def announce(port: int) -> None:
        print(
            f"\nModelArts exporter demo: simulator at {simulator.url}, polled every "
            f"{interval:g}s.\nMetrics: {_metrics_url(listen_address, port)}  (Ctrl-C to stop)\n",
            flush=True,
        )

    try:
        config = demo_config(simulator.url, interval)
        return asyncio.run(app.run(config, listen_address, log, on_listening=announce))
    finally:
        stop_drift.set()
        drifter.join(timeout=2)
        simulator.stop()
