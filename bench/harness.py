"""What the bench scripts share: the real exporter process, its /metrics, and /proc.

The scripts run as ``python bench/NAME.py``, so this module is imported as ``harness``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

#: (name, labels, value) of one sample on /metrics.
Sample = tuple[str, dict[str, str], float]


#: The exporter, with SIGUSR1 writing CPython's allocator statistics to stderr.
_WITH_MALLOC_STATS = """
import signal, sys
from exporter.cli import main
signal.signal(signal.SIGUSR1, lambda *_: sys._debugmallocstats())
raise SystemExit(main())
"""


@contextmanager
def exporter_process(
    config: Path, log: Path, access_key: str, secret_key: str, malloc_stats: bool = False
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run ``modelarts-exporter`` on ``config`` (JSON logs to ``log``, any free port);
    yield the process and its /metrics port, and stop it (SIGTERM, then SIGKILL) after.
    With ``malloc_stats``, :func:`malloc_stats` can read its allocator."""
    env = {**os.environ, "HUAWEICLOUD_SDK_AK": access_key, "HUAWEICLOUD_SDK_SK": secret_key}
    program = (
        [sys.executable, "-c", _WITH_MALLOC_STATS]
        if malloc_stats
        else [str(Path(sys.executable).with_name("modelarts-exporter"))]
    )
    command = [
        *program,
        f"--config.file={config}",
        "--web.listen-address=127.0.0.1:0",
        "--log.format=json",
        "--log.level=info",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process, _port(log, process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def malloc_stats(pid: int, log: Path, timeout: float = 10) -> dict[str, int]:
    """The small-object allocator of an exporter started with ``malloc_stats``: ``arenas``
    (1 MiB each), ``used`` (bytes in allocated blocks) and ``free_pools`` (bytes in wholly
    free pools of the arenas kept: memory that fragmentation holds)."""
    start = log.stat().st_size
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with log.open("rb") as file:
            file.seek(start)
            text = file.read().decode(errors="replace")
        found = dict(
            re.findall(
                r"^# (arenas allocated current|bytes in allocated blocks) += +([\d,]+)", text, re.M
            )
            + re.findall(r"^\d+ (unused pools) \* \d+ bytes += +([\d,]+)", text, re.M)
        )
        if len(found) == 3:
            return {
                "arenas": int(found["arenas allocated current"].replace(",", "")),
                "used": int(found["bytes in allocated blocks"].replace(",", "")),
                "free_pools": int(found["unused pools"].replace(",", "")),
            }
        time.sleep(0.1)
    raise RuntimeError(f"no allocator statistics from {pid} within {timeout:.0f} s")


def _port(log: Path, process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """The /metrics port from the exporter's ``exporter_started`` log line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("event") == "exporter_started":
                return int(entry["port"])
        if process.poll() is not None:
            raise RuntimeError(f"exporter exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(0.05)
    raise RuntimeError(f"exporter did not start within {timeout:.0f} s:\n{log.read_text()}")


def _body(port: int) -> bytes:
    """One plain-text /metrics answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/metrics")
    body = connection.getresponse().read()
    connection.close()
    return body


def totals(port: int, names: Iterable[str]) -> dict[str, float]:
    """Each of ``names``' values on /metrics summed over its labels (0 when absent), found by
    a regular expression over the raw text. Parsing a whole 1000-pool answer costs the
    bench about half a core when done every second, CPU taken from the exporter it measures.
    """
    wanted = b"|".join(re.escape(name.encode()) for name in names)
    found = dict.fromkeys(names, 0.0)
    for name, value in re.findall(rb"^(" + wanted + rb")(?:\{.*\})? (\S+)$", _body(port), re.M):
        found[name.decode()] += float(value)
    return found


def scrape(port: int) -> list[Sample]:
    """Every sample of one plain-text /metrics answer."""
    text = _body(port).decode()
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def proc_status(pid: int, field: str) -> int:
    """A number from ``/proc/PID/status``: ``VmRSS``/``VmHWM`` in kB, ``Threads``."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(text.split(f"{field}:")[1].split()[0])


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
