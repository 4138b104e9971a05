"""README command 1: ``modelarts-exporter demo`` serves live metrics from its simulator."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from exporter.demo import DEMO_POOLS, DEMO_PROJECT
from tests.support.processes import ROOT, run_cli
from tests.support.promtext import parse, series

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


def test_demo_offers_no_config_file() -> None:
    """The demo reads no config file, so it does not offer --config.file: not in its help,
    and a usage error (exit 2) when given after the command or before it."""
    help_text = run_cli("demo", "--help")
    assert help_text.returncode == 0
    assert "--web.listen-address" in help_text.stdout
    assert "--config.file" not in help_text.stdout
    after = run_cli("demo", "--config.file=config.yaml")
    assert after.returncode == 2
    assert "unrecognized arguments: --config.file=config.yaml" in after.stderr
    before = run_cli("--config.file=config.yaml", "demo")
    assert before.returncode == 2
    assert "demo: --config.file is not read" in before.stderr


def test_taken_port_names_the_flag_and_the_address() -> None:
    """A demo whose port is taken exits 1 with an error that names --web.listen-address and
    the address given."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_cli("demo", f"--web.listen-address={address}", "--log.format=json")
    assert result.returncode == 1
    (failed,) = [e for e in map(json.loads, result.stdout.splitlines()) if e.get("level")]
    assert failed["event"] == "listen_failed"
    assert failed["error"].startswith(f"cannot listen on --web.listen-address={address}: ")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_takes_a_port() -> None:
    """``make demo PORT=9999`` runs the demo with --web.listen-address=:9999; without PORT,
    with the default address (no flag), even when the environment has a PORT."""
    env = {**os.environ, "PORT": "1234"}

    def demo_command(*variables: str) -> str:
        result = subprocess.run(
            ["make", "-n", "demo", *variables],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        (line,) = [x for x in result.stdout.splitlines() if "modelarts-exporter demo" in x]
        return line

    assert demo_command("PORT=9999").split()[-1] == "--web.listen-address=:9999"
    assert "--web.listen-address" not in demo_command()
