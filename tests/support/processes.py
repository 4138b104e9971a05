"""Running the real exporter from tests: the CLI as a subprocess, or a long-lived exporter
process whose port is read from its ``exporter_started`` log line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.promtext import Samples, parse

ROOT = Path(__file__).resolve().parents[2]


def exporter_command() -> list[str]:
    """The installed console script when there is one, else ``python -m exporter``."""
    script = Path(sys.executable).with_name("modelarts-exporter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "exporter"]


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m exporter ARGS`` to completion; ``env`` is the whole environment."""
    return run_python("-m", "exporter", *args, env=env)


def run_python(
    *args: str | Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """This Python with ``ARGS`` (a script and its arguments, or ``-m module ...``) to
    completion, from the repository root; ``env`` is the whole environment."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=ROOT,
        env=dict(os.environ if env is None else env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class ExporterProcess:
    """A running ``modelarts-exporter`` writing JSON logs to ``log_path``."""

    process: subprocess.Popen[str]
    log_path: Path
    url: str = ""

    def logs(self) -> list[dict[str, Any]]:
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def started(self, timeout: float = 15) -> dict[str, Any]:
        """The ``exporter_started`` log entry, once written."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.logs():
                if entry.get("event") == "exporter_started":
                    return entry
            assert self.process.poll() is None, self.log_path.read_text()
            time.sleep(0.05)
        pytest.fail(f"exporter did not start within {timeout}s: {self.log_path.read_text()}")

    def wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, f"exporter not ready in {timeout}s"
            time.sleep(0.05)

    def scrape(self) -> Samples:
        response = httpx.get(f"{self.url}/metrics", timeout=5)
        assert response.status_code == 200
        return parse(response.text)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_exporter(
    config: Path, log_path: Path, env: Mapping[str, str], *flags: str
) -> ExporterProcess:
    """Start the exporter on a free loopback port; return once it logged its port."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                *exporter_command(),
                f"--config.file={config}",
                "--web.listen-address=127.0.0.1:0",
                "--log.format=json",
                *flags,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            text=True,
        )
    exporter = ExporterProcess(process, log_path)
    try:
        exporter.url = f"http://127.0.0.1:{exporter.started()['port']}"
    except BaseException:
        exporter.kill()
        raise
    return exporter
