"""README command 1: ``modelarts-exporter demo`` serves live metrics from its simulator."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from exporter.demo import DEMO_POOLS, DEMO_PROJECT
from tests.promtext import parse, series

pytestmark = pytest.mark.e2e


def test_demo_prints_url_serves_every_pool_and_stops_on_sigint() -> None:
    """The demo prints its /metrics URL, discovers and serves all demo pools and specs,
    exits 0 on SIGINT."""
    script = Path(sys.executable).with_name("modelarts-exporter")
    process = subprocess.Popen(
        [str(script), "demo", "--web.listen-address=127.0.0.1:0", "--log.format=json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 20
        assert process.stdout is not None
        while url is None and time.monotonic() < deadline:
            match = re.search(r"Metrics: (http://\S+/metrics)", process.stdout.readline())
            url = match[1] if match else None
        assert url, "the demo did not print its metrics URL"
        while httpx.get(url.replace("/metrics", "/readyz")).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        samples = parse(httpx.get(url).text)
        pools = {dict(k)["pool"] for k in series(samples, "modelarts_pool_jobs")}
        assert pools == set(DEMO_POOLS)
        discovered = {dict(k)["pool"] for k in series(samples, "modelarts_pool_info")}
        assert discovered == set(DEMO_POOLS)
        assert series(samples, "modelarts_spec_no_resource", project_id=DEMO_PROJECT)
        assert set(series(samples, "modelarts_poll_success").values()) == {1.0}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
