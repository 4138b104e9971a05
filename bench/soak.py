"""Soak: the real exporter at a fast interval for thousands of cycles while faults come and go.

One ``modelarts-exporter`` process polls two projects of an in-process simulator over real
sockets every 0.1 s: ``STATIC`` (eight listed pools, train and inference specs) and
``DISCOVERED`` (pools found by ListPools every cycle, some of which come and go). Meanwhile:

- **faults**: one at a time, for 0.2-1.5 s each, drawn at random (after one pass over every
  kind during the warm-up): timeouts, 500/502/503, 429 with and without ``Retry-After``,
  401, 403, connection resets, malformed JSON, wrong types, oversized bodies, the
  ``statics``/``string_counts``/``is_success: false`` variants, a pool that answers 404, and
  discovered pools appearing and disappearing;
- **reloads**: SIGHUP every 5 s or so, alternating two valid configs (a pool more or less),
  every third one an invalid config that must be refused;
- **scrapes**: every 20 ms, mostly keep-alive gzip /metrics, also new connections,
  OpenMetrics, /readyz, /healthz, HEAD, malformed request lines and clients that hang up
  without asking. Every answer must be the expected one.

After the warm-up and at the end the faults and scrapes pause for a few clean cycles and the
exporter's RSS (VmRSS), open file descriptors and threads are read. Passes when:

- RSS grew by less than 5 MB, and open file descriptors did not grow;
- threads stayed within the exporter's fixed ``MAX_THREADS`` (its worker pools start their
  threads when first needed, so a count below it may rise to it);
- every scrape got the expected answer;
- the log shows every valid reload applied and every invalid one refused, and holds no
  traceback, no ``exception`` entry and no non-JSON line;
- SIGTERM ends the process with exit code 0.

Exit status 0 on a pass, 1 otherwise. A stuck exporter fails it too (deadlines).

    .venv/bin/python bench/soak.py [--cycles 2000] [--warm-up 300] [--seed 1]

``tests/e2e/test_soak.py`` runs a short variant in CI.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import harness  # bench/harness.py: the scripts run from bench/

from exporter.app import MAX_THREADS
from exporter.simulator import Fault, Simulator, default_specs

STATIC = "50a650a650a650a650a650a650a650a6"
DISCOVERED = "d15c50a6d15c50a6d15c50a6d15c50a6"
AK, SK = "SOAKACCESSKEY0000000", "soak-secret-key-0123456789"
STATIC_POOLS = [f"static-{i:02d}" for i in range(8)]
DISCOVERED_POOLS = [f"found-{i:02d}" for i in range(6)]
CHURNING_POOLS = [f"churn-{i:02d}" for i in range(4)]
JOB_TYPES = ("train", "inference")
APIS = ("workloads", "specs", "pools")
INTERVAL = 0.1
MAX_RSS_GROWTH_MB = 5.0
SCRAPE_EVERY = 0.02
RELOAD_EVERY = 5.0
#: Log events that mean code failed where it must not (they carry ``exception`` too).
CRASH_EVENTS = frozenset(
    {"poll_crashed", "poll_cycle_crashed", "publish_failed", "exporter_failed"}
)


def counts(seed: int) -> dict[str, dict[str, int]]:
    return {
        "train": {"Running": seed, "Queue": 1, "Failed": seed % 3},
        "infer": {"Running": 2},
        "notebook": {"Running": 1, "Abnormal": seed % 2},
    }


# ---------------------------------------------------------------- faults


@dataclass
class Faults:
    """Injects one random fault at a time into ``simulator``; ``clear`` undoes it."""

    simulator: Simulator
    rng: random.Random
    injected: Counter[str] = field(default_factory=Counter)
    _undo: Callable[[], None] | None = None

    def kinds(self) -> dict[str, Callable[[], Callable[[], None] | None]]:
        """Fault name -> apply it, returning how to undo it (None: nothing to undo)."""

        def fault(make: Callable[[str], Fault]) -> Callable[[], Callable[[], None]]:
            def apply() -> Callable[[], None]:
                self.simulator.inject(make(self.rng.choice(APIS)))
                return self.simulator.clear_faults

            return apply

        garbage = json.dumps({"statistics": {"total": {"x": [None, "-1", {"y": []}]}}}).encode()
        return {
            "timeout": fault(lambda api: Fault.slow(0.5, api=api)),
            "500": fault(lambda api: Fault.server_error(500, api=api)),
            "502": fault(lambda api: Fault.server_error(502, api=api)),
            "503": fault(lambda api: Fault.server_error(503, api=api)),
            "429-retry-after": fault(lambda api: Fault.throttled(0.05, api=api)),
            "429": fault(lambda api: Fault.throttled(api=api)),
            "401": fault(lambda api: Fault.unauthorized(api=api, times=1)),
            "403": fault(lambda api: Fault(status=403, api=api, times=1)),
            "connection-reset": fault(lambda api: Fault.disconnect(api=api)),
            "malformed-json": fault(lambda api: Fault.malformed_json(api=api)),
            "wrong-types": fault(lambda api: Fault(status=200, body=garbage, api=api)),
            "oversized": fault(lambda api: Fault(variant="oversized", api=api, times=2)),
            "statics": fault(lambda _: Fault(variant="statics")),
            "string-counts": fault(lambda _: Fault(variant="string_counts")),
            "is-success-false": fault(lambda _: Fault(variant="is_success_false")),
            "pool-not-found": self._pool_gone,
            "pool-churn": self._churn,
        }

    def _pool_gone(self) -> Callable[[], None]:
        index = self.rng.randrange(len(STATIC_POOLS))
        self.simulator.remove_pool(STATIC, STATIC_POOLS[index])
        return lambda: self.simulator.set_pool(STATIC, STATIC_POOLS[index], counts(index))

    def _churn(self) -> None:
        pool = self.rng.choice(CHURNING_POOLS)
        if not self.simulator.remove_pool(DISCOVERED, pool):
            self.simulator.set_pool(DISCOVERED, pool, counts(2))

    def inject(self, name: str) -> None:
        self.clear()
        self._undo = self.kinds()[name]()
        self.injected[name] += 1

    def clear(self) -> None:
        if self._undo is not None:
            self._undo()
            self._undo = None


# ---------------------------------------------------------------- the exporter process


def write_config(path: Path, sim_port: int, variant: int) -> None:
    """Valid variants 0 and 1 (one static pool more or less); 2 is invalid."""
    if variant == 2:
        path.write_text("poll_interval: every now and then\ntargets: []\n")
        return
    endpoint = f"http://127.0.0.1:{sim_port}"
    common = {"region": "cn-north-4", "endpoint": endpoint}
    config = {
        "poll_interval": f"{INTERVAL}s",
        "stale_after": f"{3 * INTERVAL}s",
        "jitter": 0,
        "timeout": "0.2s",
        "max_concurrency": 4,
        "requests_per_second": 10000,
        "max_response_bytes": 1024 * 1024,
        "retry": {"max_attempts": 2, "initial_backoff": "0.01s", "max_backoff": "0.05s"},
        "targets": [
            {
                "project_id": STATIC,
                **common,
                "pools": STATIC_POOLS[: len(STATIC_POOLS) - variant],
                "resource_specs": {"job_types": list(JOB_TYPES)},
            },
            {
                "project_id": DISCOVERED,
                **common,
                "discovery": {"refresh_interval": f"{INTERVAL}s"},
            },
        ],
    }
    path.write_text(json.dumps(config))


@dataclass
class Exporter:
    process: subprocess.Popen[bytes]
    log: Path
    port: int

    def status(self, field_name: str) -> int:
        return harness.proc_status(self.process.pid, field_name)

    def resources(self) -> tuple[float, int, int]:
        """RSS in MB, open file descriptors, threads."""
        fds = harness.open_fds(self.process.pid)
        return self.status("VmRSS") / 1024, fds, self.status("Threads")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            connection.request("GET", "/readyz")
            status = connection.getresponse().status
            connection.close()
            if status == 200:
                return
            time.sleep(0.05)
        raise RuntimeError("the exporter did not become ready within 30 s")

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """The labels and value of every ``name`` sample on /metrics."""
        return [(labels, v) for found, labels, v in harness.scrape(self.port) if found == name]

    def cycles(self) -> float:
        """Completed poll cycles of the STATIC project."""
        found = self.samples("modelarts_exporter_poll_cycles_total")
        return sum(value for labels, value in found if labels.get("project_id") == STATIC)

    def errors(self) -> Counter[str]:
        """Failed polls so far by error code, all projects and APIs."""
        errors: Counter[str] = Counter()
        for labels, value in self.samples("modelarts_poll_errors_total"):
            errors[labels["error_code"]] += int(value)
        return errors


@contextmanager
def running_exporter(config: Path, log: Path) -> Iterator[Exporter]:
    with harness.exporter_process(config, log, AK, SK) as (process, port):
        yield Exporter(process, log, port)


# ---------------------------------------------------------------- scrapes


@dataclass
class Scraper:
    """Scrapes and pokes the exporter from a thread until ``stop``; ``paused`` holds it."""

    port: int
    rng: random.Random
    paused: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    done: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    _kept: http.client.HTTPConnection | None = None
    _idle: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            if self.paused.is_set():
                self._close()
                self._idle.set()
                time.sleep(0.01)
                continue
            self._idle.clear()
            try:
                self._one()
            except Exception as exc:  # noqa: BLE001 - a failed scrape is a finding, not a stop
                self.failures.append(f"{type(exc).__name__}: {exc}")
                self._close()
            time.sleep(SCRAPE_EVERY)
        self._close()
        self._idle.set()

    def pause(self) -> None:
        self.paused.set()
        if not self._idle.wait(timeout=10):
            raise RuntimeError("the scraper did not pause within 10 s")

    def _close(self) -> None:
        if self._kept is not None:
            self._kept.close()
            self._kept = None

    def _one(self) -> None:
        roll = self.rng.random()
        if roll < 0.7:
            if self._kept is None:
                self._kept = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            started = time.perf_counter()
            self._kept.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            response = self._kept.getresponse()
            body = gzip.decompress(response.read())
            self.slowest = max(self.slowest, time.perf_counter() - started)
            self._expect("metrics-keepalive-gzip", response.status, 200, b"modelarts_up" in body)
        elif roll < 0.8:
            accept = "application/openmetrics-text; version=1.0.0"
            self._fresh("metrics-openmetrics", "GET", "/metrics", {"Accept": accept}, 200)
        elif roll < 0.83:
            self._fresh("readyz", "GET", "/readyz", {}, 200)
        elif roll < 0.85:
            self._fresh("healthz", "GET", "/healthz", {}, 200)
        elif roll < 0.9:
            self._fresh("head-landing", "HEAD", "/", {}, 200)
        elif roll < 0.95:
            # The stdlib answers a request line it cannot parse in HTTP/0.9 style: an error
            # page, no status line.
            answer = self._raw(b"NONSENSE\r\n\r\n")
            self._expect("malformed-request", 400 if b"Error code: 400" in answer else 0, 400)
        else:
            self._raw(b"")  # connect and hang up
            self.done["hang-up"] += 1

    def _fresh(
        self, name: str, method: str, path: str, headers: dict[str, str], status: int
    ) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            response.read()
            self._expect(name, response.status, status)
        finally:
            connection.close()

    def _raw(self, data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            if not data:
                return b""
            sock.sendall(data)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            return answer

    def _expect(self, name: str, got: int, want: int, body_ok: bool = True) -> None:
        self.done[name] += 1
        if got != want or not body_ok:
            self.failures.append(f"{name}: HTTP {got}, expected {want} (body ok: {body_ok})")


# ---------------------------------------------------------------- the run


@dataclass
class Soak:
    simulator: Simulator
    exporter: Exporter
    config: Path
    scraper: Scraper
    faults: Faults
    rng: random.Random
    reloads: Counter[str] = field(default_factory=Counter)
    _variant: int = 1  # the exporter starts with variant 0: the first reload changes it
    _next_reload: float = 0.0

    def until(self, cycles: float, kinds: list[str]) -> None:
        """Faults (every one of ``kinds``, in order, then random ones) and reloads until
        ``cycles``; fails when the exporter does not get there in 3 x the time it needs."""
        names = list(self.faults.kinds())
        queue = list(kinds)
        deadline = self._deadline(cycles - self.exporter.cycles())
        while queue or self.exporter.cycles() < cycles:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the exporter did not reach {cycles:.0f} cycles in time")
            self.faults.inject(queue.pop(0) if queue else self.rng.choice(names))
            time.sleep(self.rng.uniform(0.2, 1.5))
            self.faults.clear()
            time.sleep(self.rng.uniform(0.0, 0.5))
            if time.monotonic() >= self._next_reload:
                self.reload()
            if self.exporter.process.poll() is not None:
                raise RuntimeError("the exporter exited")

    def reload(self) -> None:
        """Every third reload is invalid; the others alternate the two valid configs."""
        self.reloads["total"] += 1
        variant = 2 if self.reloads["total"] % 3 == 0 else self._variant
        self.reloads["invalid" if variant == 2 else "valid"] += 1
        write_config(self.config, self.simulator.port, variant)
        if variant != 2:
            self._variant = 1 - self._variant
        self.exporter.process.send_signal(signal.SIGHUP)
        self._next_reload = time.monotonic() + RELOAD_EVERY

    def settle(self) -> tuple[float, int, int, float]:
        """Pause faults and scrapes, wait three clean cycles, and read
        RSS (MB), open fds and threads; returns them with the cycle count."""
        self.scraper.pause()
        self.faults.clear()
        start = self.exporter.cycles()
        deadline = self._deadline(3)
        while self.exporter.cycles() < start + 3:
            if time.monotonic() > deadline:
                raise RuntimeError("the exporter did not finish 3 clean cycles in time")
            time.sleep(INTERVAL)
        time.sleep(0.5)  # connection threads of the last scrapes end
        rss, fds, threads = self.exporter.resources()
        cycles = self.exporter.cycles()
        self.scraper.paused.clear()
        return rss, fds, threads, cycles

    @staticmethod
    def _deadline(cycles: float) -> float:
        """When ``cycles`` more cycles are overdue: 3 x their time, plus 30 s (refusal
        backoffs, a busy machine)."""
        return time.monotonic() + 3 * cycles * INTERVAL + 30


@dataclass
class LogSummary:
    """What the exporter's output says: ``problems`` (crashes, tracebacks, non-JSON lines),
    entries by level and by event."""

    problems: list[str] = field(default_factory=list)
    levels: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)


def check_log(log: Path) -> LogSummary:
    summary = LogSummary()
    for number, line in enumerate(log.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            summary.problems.append(f"line {number} is not a JSON log entry: {line[:200]}")
            continue
        summary.levels[entry.get("level", "?")] += 1
        summary.events[entry.get("event", "?")] += 1
        if "exception" in entry or entry.get("event") in CRASH_EVENTS:
            summary.problems.append(f"line {number}: {line[:500]}")
    return summary


def tally(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items()))


Sample = tuple[float, int, int, float]  # RSS (MB), open fds, threads, cycles so far


@dataclass
class Result:
    before: Sample
    after: Sample
    peak_mb: float
    seconds: float
    errors: Counter[str]
    exit_code: int
    soak: Soak
    log: LogSummary


def simulator_with_data() -> Simulator:
    simulator = Simulator(access_keys={AK: SK}, max_recorded_requests=10)
    for index, pool in enumerate(STATIC_POOLS):
        simulator.set_pool(STATIC, pool, counts(index))
    for index, pool in enumerate(DISCOVERED_POOLS + CHURNING_POOLS[:2]):
        simulator.set_pool(DISCOVERED, pool, counts(index))
    for job_type in JOB_TYPES:
        simulator.set_specs(STATIC, job_type, default_specs(job_type))
    return simulator


def run(cycles: int, warm_up: int, rng: random.Random) -> Result:
    """Warm up (every fault kind once), sample, soak ``cycles`` more, sample, stop."""
    started = time.monotonic()
    simulator = simulator_with_data()
    with simulator, tempfile.TemporaryDirectory() as tmp:
        config, log = Path(tmp, "config.json"), Path(tmp, "exporter.log")
        write_config(config, simulator.port, 0)
        with running_exporter(config, log) as exporter:
            exporter.wait_ready()
            scraper = Scraper(exporter.port, random.Random(rng.random()))
            scraping = threading.Thread(target=scraper.run, name="scraper", daemon=True)
            scraping.start()
            faults = Faults(simulator, rng)
            soak = Soak(simulator, exporter, config, scraper, faults, rng)
            soak.until(warm_up, list(faults.kinds()))
            before = soak.settle()
            rss, fds, threads, done = before
            print(
                f"baseline after {done:.0f} cycles: RSS {rss:.1f} MB, "
                f"open fds {fds}, threads {threads}",
                flush=True,
            )
            soak.until(done + cycles, [])
            after = soak.settle()
            peak = exporter.status("VmHWM") / 1024
            errors = exporter.errors()
            scraper.stop.set()
            scraping.join(timeout=10)
            if scraping.is_alive():
                scraper.failures.append("the scraper thread did not stop")
            exporter.process.send_signal(signal.SIGTERM)
            exit_code = exporter.process.wait(timeout=10)
        summary = check_log(log)
    return Result(before, after, peak, time.monotonic() - started, errors, exit_code, soak, summary)


def report(result: Result) -> list[str]:
    """Print the figures; return what failed."""
    (rss0, fds0, threads0, cycles0), (rss1, fds1, threads1, cycles1) = result.before, result.after
    soak, scraper, log = result.soak, result.soak.scraper, result.log
    growth = rss1 - rss0
    print(
        f"{cycles1 - cycles0:.0f} cycles after the baseline ({cycles1:.0f} in all), "
        f"{result.seconds:.0f} s\n"
        f"RSS {rss0:.1f} -> {rss1:.1f} MB ({growth:+.1f} MB, peak {result.peak_mb:.1f} MB); "
        f"open fds {fds0} -> {fds1}; threads {threads0} -> {threads1}\n"
        f"faults injected: {sum(soak.faults.injected.values())} "
        f"({tally(soak.faults.injected)})\n"
        f"failed polls the exporter counted: {sum(result.errors.values())} "
        f"({tally(result.errors)})\n"
        f"reloads: {soak.reloads['valid']} valid, {soak.reloads['invalid']} invalid; "
        f"logged: {log.events['config_reloaded']} config_reloaded, "
        f"{log.events['config_reload_failed']} config_reload_failed\n"
        f"requests to the exporter: {sum(scraper.done.values())} "
        f"({tally(scraper.done)}); "
        f"slowest keep-alive /metrics {1000 * scraper.slowest:.1f} ms\n"
        f"log entries by level: {dict(sorted(log.levels.items()))}; "
        f"exit code {result.exit_code}",
        flush=True,
    )
    checks = [
        (growth < MAX_RSS_GROWTH_MB, f"RSS grew {growth:.1f} MB (limit {MAX_RSS_GROWTH_MB} MB)"),
        (fds1 <= fds0, f"open fds grew {fds0} -> {fds1}"),
        (
            max(threads0, threads1) <= MAX_THREADS,
            f"threads {threads0} -> {threads1}: more than the exporter's {MAX_THREADS}",
        ),
        (result.exit_code == 0, f"SIGTERM: exit code {result.exit_code}"),
        (
            log.events["config_reloaded"] == soak.reloads["valid"]
            and log.events["config_reload_failed"] == soak.reloads["invalid"],
            "the log does not show every valid reload applied and every invalid one refused",
        ),
        (sum(scraper.done.values()) > 0, "no request to the exporter was answered"),
    ]
    return [problem for ok, problem in checks if not ok] + scraper.failures[:20] + log.problems[:20]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=2000, help="cycles after the warm-up")
    parser.add_argument("--warm-up", type=int, default=300, help="cycles before the baseline")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    failed = report(run(args.cycles, args.warm_up, random.Random(args.seed)))
    for problem in failed:
        print(f"FAIL: {problem}")
    print("FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
