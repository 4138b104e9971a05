"""The fault matrix, end to end: one real exporter process, one fault at a time.

One ``modelarts-exporter`` (1 s interval, 3 s ``stale_after``, 400 ms timeout, 2 attempts)
polls five projects over real sockets:

- ``PROJECT``: pools ``pool-a``, ``pool-b``, ``pool-c`` and the train and inference specs.
  Workload faults hit ``pool-b`` only (``pool-a`` is every cycle's first probe).
- ``DISCOVERED``: two pools found by ListPools (refreshed every second), same simulator.
- ``IAM``: one pool, IAM password credentials, on its own simulator, whose clock the
  ``401-expired-token`` row moves a day ahead.
- ``REFUSED``: one pool at a loopback port that is bound but not listening (connection
  refused) until the ``connection-refused`` row starts a simulator there.
- ``UNRESOLVABLE``: one pool at ``http://modelarts.invalid``.

Each row of ``ROWS`` injects one fault, waits until /metrics shows it, clears it and waits
for recovery. Every scrape meanwhile (one each 100 ms) must answer 200 within 100 ms, and
every item's data must equal the simulator's state while fresh: present while its last
success is younger than ``stale_after``, absent once older, never otherwise. Items the
fault does not hit must keep succeeding. The fault matrix in ``docs/troubleshooting.md`` is
the same matrix in words (``docs/fault-matrix.md`` says how it is checked);
``test_every_row_is_documented`` keeps the two in step.
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import os
import re
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from exporter.simulator import (
    STATUS_KEYS,
    WORKLOAD_TYPES,
    Fault,
    RecordedRequest,
    Simulator,
    default_specs,
)
from tests.e2e.test_e2e import pool_counts
from tests.support.processes import ROOT, ExporterProcess, start_exporter
from tests.support.promtext import Samples, parse

pytestmark = pytest.mark.e2e

PROJECT = "fa017fa017fa017fa017fa017fa017fa"
#: The region of every project here: a label of each of their series.
REGION = "cn-north-4"
DISCOVERED = "d15cfa01d15cfa01d15cfa01d15cfa01"
IAM = "1a3fa0171a3fa0171a3fa0171a3fa017"
REFUSED = "2ef05ed02ef05ed02ef05ed02ef05ed0"
UNRESOLVABLE = "0d450d450d450d450d450d450d450d45"
AK, SK = "MATRIXACCESSKEY00000", "matrix-secret-key-0123456789"
DOMAIN, USER, PASSWORD = "matrix-account", "monitoring", "matrix-password"
COUNTS = {"pool-a": pool_counts(3), "pool-b": pool_counts(4), "pool-c": pool_counts(5)}
FAULTY = "pool-b"
ON_FAULTY = f"/{FAULTY}/"

INTERVAL = 1.0
STALE_AFTER = 3.0
TIMEOUT = 0.4
MAX_ATTEMPTS = 2
MAX_BACKOFF = 0.2
SCRAPE_BUDGET = 0.1
SCRAPE_EVERY = 0.1
#: Recovery: the next cycle starts within one interval of the fault clearing; this much
#: more covers that cycle's requests and publication on a busy machine.
SLACK = 0.75
DAY = 86400.0

WORKLOADS, SPECS, POOLS = "workload_statistics", "resource_specs", "pools"
LAST_SUCCESS = "modelarts_poll_last_success_timestamp_seconds"
TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"

#: Data series checked against the simulator's state; the other data series (info, phase,
#: nodes) must stay as they were when the module started.
JOB_METRICS = ("modelarts_pool_jobs", "modelarts_pool_type_jobs")
SPEC_NUMBERS = (
    ("modelarts_spec_gpus", "gpu_num", 1.0),
    ("modelarts_spec_cpu_cores", "core", 1.0),
    ("modelarts_spec_memory_bytes", "cpu", float(2**30)),
    ("modelarts_spec_max_nodes", "max_num", 1.0),
    ("modelarts_spec_pricing_units", "unit_num", 1.0),
)
COMPUTED = {*JOB_METRICS, "modelarts_spec_no_resource", "modelarts_specs"} | {
    name for name, _, _ in SPEC_NUMBERS
}

Key = tuple[str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Item:
    """One polled item, as in the ``project_id, api, target`` labels of the health series."""

    project: str
    api: str
    target: str

    def labels(self) -> dict[str, str]:
        return {
            "project_id": self.project,
            "region": REGION,
            "api": self.api,
            "target": self.target,
        }


def item_of(key: Key) -> Item | None:
    """The item whose data a series is; None for health and process series."""
    name, labels = key[0], dict(key[1])
    if name in JOB_METRICS:
        return Item(labels["project_id"], WORKLOADS, labels["pool"])
    if name.startswith("modelarts_spec"):
        return Item(labels["project_id"], SPECS, labels["job_type"])
    if name.startswith("modelarts_pool_"):
        return Item(labels["project_id"], POOLS, "0")
    return None


def key(name: str, **labels: str) -> Key:
    return (name, frozenset(labels.items()))


def number(value: object) -> float | None:
    """A spec field as the exporter reads it: a number or numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def expected_data(simulator: Simulator, projects: tuple[str, ...]) -> Samples:
    """The job and spec series the simulator's state should show as, per docs/metrics.md."""
    state = simulator.snapshot_state()
    want: Samples = {}
    for project in projects:
        for pool, reported in state.pools.get(project, {}).items():
            # Every documented job type of a pool that answered, absent ones with no jobs.
            none: dict[str, int] = {}
            types = {job_type: none for job_type in WORKLOAD_TYPES} | dict(reported)
            for job_type, statuses in types.items():
                # Every documented status, zeros too, then the undocumented ones.
                served = {status: statuses.get(status, 0) for status in STATUS_KEYS} | statuses
                labels = {"project_id": project, "region": REGION, "pool": pool, "type": job_type}
                for status, count in served.items():
                    want[key("modelarts_pool_jobs", status=status.lower(), **labels)] = count
                want[key("modelarts_pool_type_jobs", **labels)] = sum(served.values())
        for job_type, specs in state.specs.get(project, {}).items():
            labels = {"project_id": project, "region": REGION, "job_type": job_type}
            want[key("modelarts_specs", **labels)] = len(specs)
            for spec in specs:
                labels = {"project_id": project, "region": REGION, "job_type": job_type}
                labels["spec_code"] = str(spec["spec_code"])
                no_resource = spec.get("no_resource")
                if isinstance(no_resource, bool):
                    want[key("modelarts_spec_no_resource", **labels)] = float(no_resource)
                for name, field_name, scale in SPEC_NUMBERS:
                    found = number(spec.get(field_name))
                    if found is not None:
                        want[key(name, **labels)] = found * scale
    return want


@dataclass
class Scrape:
    """One /metrics answer and the wall-clock interval it was asked and answered in."""

    started: float
    ended: float
    samples: Samples

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get(key(name, **labels))

    def success(self, item: Item) -> float | None:
        return self.value("modelarts_poll_success", **item.labels())

    def last_success(self, item: Item) -> float | None:
        return self.value(LAST_SUCCESS, **item.labels())

    def errors(self, project: str, api: str, code: str) -> float:
        found = self.value(
            "modelarts_poll_errors_total",
            project_id=project,
            region=REGION,
            api=api,
            error_code=code,
        )
        return found or 0.0

    def requests(self, project: str, api: str, code: str) -> float:
        found = self.value(
            "modelarts_api_requests_total", project_id=project, region=REGION, api=api, code=code
        )
        return found or 0.0

    def up(self, project: str) -> float | None:
        return self.value("modelarts_up", project_id=project, region=REGION)

    @functools.cached_property
    def data(self) -> dict[Item, Samples]:
        return by_item(self.samples)


def by_item(samples: Samples) -> dict[Item, Samples]:
    """The data series among ``samples``, by the item they are the data of."""
    found: dict[Item, Samples] = defaultdict(dict)
    for k, v in samples.items():
        if (item := item_of(k)) is not None:
            found[item][k] = v
    return found


class ShiftedClock:
    """Real time plus a shift the test sets: the IAM simulator's clock (token expiry)."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


ITEMS = (
    *(Item(PROJECT, WORKLOADS, pool) for pool in COUNTS),
    Item(PROJECT, SPECS, "train"),
    Item(PROJECT, SPECS, "inference"),
    Item(DISCOVERED, POOLS, "0"),
    Item(DISCOVERED, WORKLOADS, "disc-x"),
    Item(DISCOVERED, WORKLOADS, "disc-y"),
    Item(IAM, WORKLOADS, "pool-i"),
    Item(REFUSED, WORKLOADS, "pool-r"),
    Item(UNRESOLVABLE, WORKLOADS, "pool-u"),
)


@dataclass
class Matrix:
    """The exporter, its simulators, and the checks every scrape of a row must pass."""

    exporter: ExporterProcess
    sim: Simulator
    iam_sim: Simulator
    iam_clock: ShiftedClock
    http: httpx.Client
    refused_port: int
    refused_holder: socket.socket | None
    refused_sim: Simulator | None = None
    #: The data series not computed from the state, as first seen healthy; until then
    #: (None) only the computed ones are compared.
    baseline: Samples | None = None
    #: Seconds each scrape took since the row began.
    durations: list[float] = field(default_factory=list)

    # ------------------------------------------------------------------ what is expected

    def unreachable(self) -> set[str]:
        """Projects that cannot succeed now: no ModelArts answers there."""
        return {UNRESOLVABLE} | (set() if self.refused_sim else {REFUSED})

    def expected(self) -> Samples:
        want = expected_data(self.sim, (PROJECT, DISCOVERED)) | expected_data(self.iam_sim, (IAM,))
        if self.refused_sim is not None:
            want |= expected_data(self.refused_sim, (REFUSED,))
        return want | (self.baseline or {})

    def expected_by_item(self) -> dict[Item, Samples]:
        return by_item(self.expected())

    def shown(self, scrape: Scrape) -> dict[Item, Samples]:
        """The scrape's data series by item: those ``expected`` knows of."""
        if self.baseline is not None:
            return scrape.data
        return by_item({k: v for k, v in scrape.samples.items() if k[0] in COMPUTED})

    # ------------------------------------------------------------------ scraping

    def scrape(self) -> Scrape:
        """GET /metrics, timed. This process's garbage collector is off meanwhile: the
        simulators' threads run here too, and a collection started by any of them would
        add its pause to a time that is meant to be the exporter's."""
        gc.disable()
        try:
            started, clock = time.time(), time.perf_counter()
            response = self.http.get("/metrics")
            self.durations.append(time.perf_counter() - clock)
        finally:
            gc.enable()
        assert response.status_code == 200, response.text[:200]
        return Scrape(started, time.time(), parse(response.text))

    def check(self, scrape: Scrape, row: Row | None = None) -> None:
        """What holds at every scrape: each item's data equals the state while fresh and
        only then; items the row's fault does not hit succeed and their projects are up."""
        wanted = self.expected_by_item()
        shown = self.shown(scrape)
        exempt = set(row.items) if row and row.outcome in (GONE, DATA) else set()
        for item in (set(wanted) | set(shown)) - exempt:
            got, last = shown.get(item, {}), scrape.last_success(item)
            if got:
                assert got == wanted.get(item, {}), item
                assert last is not None, item
                assert scrape.started - last < STALE_AFTER, f"{item} shown when stale"
            elif wanted.get(item):
                assert last is None or scrape.ended - last >= STALE_AFTER, f"{item} left early"
        spared = self.unreachable() | ({row.items[0].project} if row and row.downs else set())
        for item in ITEMS:
            if item.project not in spared and (row is None or item not in row.items):
                assert scrape.success(item) == 1, item
        for project in {item.project for item in ITEMS} - spared:
            assert scrape.up(project) == 1, project

    def watch(
        self, until: Callable[[Scrape], bool], timeout: float, row: Row | None, what: str
    ) -> Scrape:
        """Scrape and ``check`` every SCRAPE_EVERY until ``until`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            scrape = self.scrape()
            self.check(scrape, row)
            if until(scrape):
                return scrape
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {timeout}s")
            time.sleep(SCRAPE_EVERY)

    def healthy(self, scrape: Scrape) -> bool:
        """Every reachable item succeeded and shows all the data it should."""
        shown = self.shown(scrape)
        reachable = [i for i in ITEMS if i.project not in self.unreachable()]
        return all(scrape.success(i) == 1 for i in reachable) and all(
            shown.get(item) == want for item, want in self.expected_by_item().items()
        )

    def wait_healthy(self) -> Scrape:
        return self.watch(self.healthy, 15, None, "all healthy")

    def logged(self, row: Row) -> dict[str, int]:
        """How many log lines of each event the row expects were written so far: its
        ``poll_failed`` lines (items, code and HTTP status), and the project's own."""
        status = int(row.http) if row.http and row.http.isdigit() else None
        project = row.items[0].project
        counts = dict.fromkeys(row.events, 0)
        for entry in self.exporter.logs():
            event = entry.get("event")
            if event not in counts or entry.get("project_id") != project:
                continue
            if event == "poll_failed" and (
                Item(project, entry.get("api", ""), entry.get("target", "")) not in row.items
                or (entry.get("error_code"), entry.get("http_status")) != (row.code, status)
                or row.message not in (entry.get("error") or "")
            ):
                continue
            counts[event] += 1
        return counts


# ---------------------------------------------------------------------------- rows

KEEP = "keep"  # a failure: the item keeps its data until stale_after
GONE = "gone"  # a failure that removes the item's data at once
DATA = "data"  # not a failure: the item's data must be right


def on_main(fault: Fault) -> Callable[[Matrix], None]:
    return lambda matrix: matrix.sim.inject(fault)


def clear_faults(matrix: Matrix) -> None:
    matrix.sim.clear_faults()


def nothing(matrix: Matrix) -> None:
    """The row's fault is there from the start, or clears itself."""


def workloads_body(count: object) -> bytes:
    """A ShowWorkloadStatistics answer with one train job count, as given."""
    item = {"type": "train", "total": 1, "status": {"Running": count}}
    return json.dumps({"statistics": {"total": 1, "items": [item]}}).encode()


def bad_body(count: object) -> Callable[[Matrix], None]:
    return on_main(Fault(path_contains=ON_FAULTY, status=200, body=workloads_body(count)))


def reshaped(variant: str, train_running: int) -> Callable[[Matrix], None]:
    """The variant for pool-b's answers, then new counts, which only it can carry."""

    def inject(matrix: Matrix) -> None:
        matrix.sim.inject(Fault(path_contains=ON_FAULTY, variant=variant))
        matrix.sim.set_pool(PROJECT, FAULTY, pool_counts(train_running))

    return inject


def restore(matrix: Matrix) -> None:
    matrix.sim.clear_faults()
    matrix.sim.set_pool(PROJECT, FAULTY, COUNTS[FAULTY])
    matrix.sim.set_specs(PROJECT, "train", default_specs("train"))


def unknown_keys(matrix: Matrix) -> None:
    counts = {"train": {"Running": 2, "Hibernating": 1}, "batch": {"Running": 4, "Exploding": 1}}
    matrix.sim.set_pool(PROJECT, FAULTY, counts)


def specs_not_numbers(matrix: Matrix) -> None:
    specs = default_specs("train")
    specs[2]["gpu_num"] = "eight"  # not a number: that series is dropped, and counted
    specs[2]["max_num"] = None
    specs[3]["core"] = " 64 "  # a numeric string: read as 64
    matrix.sim.set_specs(PROJECT, "train", specs)


def expire_iam_token(matrix: Matrix) -> None:
    """A day passes at IAM and ModelArts (the simulator): the cached token has expired."""
    matrix.iam_clock.shift += DAY + 3600


def serve_refused_port(matrix: Matrix) -> None:
    """Something listens on the refused port at last: a simulator with REFUSED's pool."""
    assert matrix.refused_holder is not None
    matrix.refused_holder.close()
    matrix.refused_holder = None
    simulator = Simulator(access_keys={AK: SK}, port=matrix.refused_port)
    simulator.set_pool(REFUSED, "pool-r", pool_counts(6))
    matrix.refused_sim = simulator.start()


@dataclass(frozen=True)
class Row:
    """One fault: how to inject and clear it, what it hits and what the exporter shows."""

    id: str
    inject: Callable[[Matrix], None]
    #: The bounded error code counted and logged; None when it is not a failure.
    code: str | None = None
    #: ``modelarts_api_requests_total``'s ``code`` for the faulty answers.
    http: str | None = None
    attempts: int = 1
    outcome: str = KEEP
    items: tuple[Item, ...] = (Item(PROJECT, WORKLOADS, FAULTY),)
    clear: Callable[[Matrix], None] = clear_faults
    #: 401/403: one request per cycle, never retried; the project's other items wait.
    refusal: bool = False
    #: Refused cycles in a row back off (skipped_auth_backoff) before recovery.
    backoff: bool = False
    #: Least time between the two attempts of one poll.
    retry_gap: float = 0.0
    recovers: bool = True
    #: What the ``error`` of its ``poll_failed`` log lines says.
    message: str = ""
    #: More checks: (before, after) the row.
    extra: Callable[[Scrape, Scrape], None] | None = None

    @property
    def events(self) -> tuple[str, ...]:
        """Log events the fault must add: each failed poll's, a throttled budget's, a
        refused target's backoff."""
        if self.code is None:
            return ()
        if self.code == "invalid_field":  # served all the same: no poll_failed
            return ("response_partly_unreadable",)
        throttled = ("request_budget_throttled",) if self.http == "429" else ()
        backoff = ("target_backoff_after_refusal",) if self.backoff else ()
        return ("poll_failed", *throttled, *backoff)

    @property
    def failures(self) -> int:
        """Failed polls to wait for: two when a second one proves something (refused
        cycles in a row back off; a fault there all along has one logged after ``before``)."""
        return 2 if self.backoff or self.inject is nothing else 1

    @property
    def downs(self) -> bool:
        """Whether the fault takes its project down (``modelarts_up`` 0): every item of it
        fails, or a refusal stops its cycles."""
        return self.refusal or self.items[0].project in (IAM, REFUSED, UNRESOLVABLE)

    @property
    def recovery(self) -> float:
        """Seconds from clearing the fault to fresh data: one interval. After two refused
        cycles in a row, the rest of the backoff too: here the fault clears one interval
        into it, and it lasts 2 intervals."""
        return (2 if self.backoff else 1) * INTERVAL + SLACK


def token_renewed_once(before: Scrape, after: Scrape) -> None:
    """One request was refused, and the expired token replaced by exactly one new one."""
    refused = after.requests(IAM, WORKLOADS, "401") - before.requests(IAM, WORKLOADS, "401")
    issued = after.requests(IAM, "iam_tokens", "201") - before.requests(IAM, "iam_tokens", "201")
    assert (refused, issued) == (1, 1)


def specs_items() -> tuple[Item, ...]:
    return (Item(PROJECT, SPECS, "train"), Item(PROJECT, SPECS, "inference"))


#: The JSON path a bad count's poll_failed line names.
RUNNING = "$.statistics.items[0].status.Running: expected a non-negative count"

ROWS = (
    Row("timeout-no-answer", on_main(Fault(path_contains=ON_FAULTY, latency=30)),
        "timeout", "none", MAX_ATTEMPTS),
    Row("slow-beyond-timeout", on_main(Fault.slow(TIMEOUT + 0.3, path_contains=ON_FAULTY)),
        "timeout", "none", MAX_ATTEMPTS),
    Row("http-500", on_main(Fault.server_error(500, path_contains=ON_FAULTY)),
        "ModelArts.50005000", "500", MAX_ATTEMPTS),
    Row("http-502", on_main(Fault.server_error(502, path_contains=ON_FAULTY)),
        "APIGW.0202", "502", MAX_ATTEMPTS),
    Row("http-503", on_main(Fault.server_error(503, path_contains=ON_FAULTY)),
        "APIGW.0202", "503", MAX_ATTEMPTS),
    Row("http-504", on_main(Fault.server_error(504, path_contains=ON_FAULTY)),
        "APIGW.0203", "504", MAX_ATTEMPTS),
    Row("429-retry-after", on_main(Fault.throttled(0.1, path_contains=ON_FAULTY)),
        "APIGW.0308", "429", MAX_ATTEMPTS, retry_gap=0.1),
    Row("429-no-retry-after", on_main(Fault.throttled(path_contains=ON_FAULTY)),
        "APIGW.0308", "429", MAX_ATTEMPTS, retry_gap=MAX_BACKOFF),
    Row("429-retry-after-beyond-max-backoff", on_main(Fault.throttled(30, path_contains=ON_FAULTY)),
        "APIGW.0308", "429", 1),
    Row("401-bad-signature", on_main(Fault.unauthorized(path_contains=ON_FAULTY)),
        "APIGW.0301", "401", refusal=True, backoff=True),
    Row("401-expired-token", expire_iam_token, "APIGW.0301", "401",
        items=(Item(IAM, WORKLOADS, "pool-i"),), clear=nothing, refusal=True,
        message="the token has expired", extra=token_renewed_once),
    Row("403-forbidden", on_main(Fault(path_contains=ON_FAULTY, status=403)),
        "APIGW.0302", "403", refusal=True, backoff=True),
    Row("connection-reset", on_main(Fault.disconnect(path_contains=ON_FAULTY)),
        "transport_error", "none", MAX_ATTEMPTS),
    Row("connection-refused", nothing, "connect_error", "none", MAX_ATTEMPTS,
        items=(Item(REFUSED, WORKLOADS, "pool-r"),), clear=serve_refused_port),
    Row("unresolvable-endpoint", nothing, "connect_error", "none", MAX_ATTEMPTS,
        items=(Item(UNRESOLVABLE, WORKLOADS, "pool-u"),), clear=nothing, recovers=False),
    Row("malformed-json", on_main(Fault.malformed_json(path_contains=ON_FAULTY)),
        "invalid_json", "200", message="response is not JSON"),
    Row("count-is-a-numeric-string", reshaped("string_counts", 12), outcome=DATA, clear=restore),
    Row("count-is-a-word", bad_body("three"), "invalid_response", "200",
        message=f'{RUNNING}, got "three"'),
    Row("count-is-null", bad_body(None), "invalid_response", "200", message=RUNNING),
    Row("count-is-negative", bad_body(-3), "invalid_response", "200", message=RUNNING),
    Row("count-is-nested-garbage", bad_body({"value": [2, {"x": None}]}),
        "invalid_response", "200", message=RUNNING),
    Row("spec-field-not-a-number", specs_not_numbers, "invalid_field", "200", outcome=DATA,
        items=(Item(PROJECT, SPECS, "train"),), clear=restore),
    Row("oversized-body", on_main(Fault(path_contains=ON_FAULTY, variant="oversized")),
        "response_too_large", "200", message="response body larger than 4194304 bytes"),
    Row("unknown-status-and-job-type", unknown_keys, outcome=DATA, clear=restore),
    Row("statics-variant", reshaped("statics", 11), outcome=DATA, clear=restore),
    Row("is-success-false", on_main(Fault(api="specs", variant="is_success_false")),
        "ModelArts.0105", "200", items=specs_items()),
    Row("404-pool-not-found", on_main(Fault(path_contains=ON_FAULTY, status=404, body=json.dumps(
        {"error_code": "ModelArts.50015001", "error_msg": f"Pool {FAULTY} not found."}).encode())),
        "ModelArts.50015001", "404", outcome=GONE),
    Row("listpools-503", on_main(Fault.server_error(503, api="pools")),
        "APIGW.0202", "503", MAX_ATTEMPTS, items=(Item(DISCOVERED, POOLS, "0"),)),
)  # fmt: skip


# ---------------------------------------------------------------------------- fixture


def held_port() -> tuple[socket.socket, int]:
    """A loopback port bound but not listening: connecting to it is refused, and nothing
    else can take it until the socket is closed."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    return holder, holder.getsockname()[1]


def config_text(sim: Simulator, iam_sim: Simulator, refused_port: int) -> str:
    main = f"""
    region: {REGION}
    endpoint: {sim.url}"""
    return f"""
poll_interval: {INTERVAL}s
stale_after: {STALE_AFTER}s
jitter: 0
timeout: {int(TIMEOUT * 1000)}ms
retry: {{max_attempts: {MAX_ATTEMPTS}, initial_backoff: 50ms, max_backoff: {MAX_BACKOFF}s}}
targets:
  - project_id: "{PROJECT}"{main}
    pools: [{", ".join(COUNTS)}]
    resource_specs: {{job_types: [train, inference]}}
  - project_id: "{DISCOVERED}"{main}
    discovery: {{refresh_interval: {INTERVAL}s}}
  - project_id: "{IAM}"
    region: {REGION}
    endpoint: {iam_sim.url}
    iam_endpoint: {iam_sim.url}
    pools: [pool-i]
    credentials:
      type: password
      user: {USER}
      password: {{env: MATRIX_IAM_PASSWORD}}
      domain: {DOMAIN}
  - project_id: "{REFUSED}"
    region: {REGION}
    endpoint: http://127.0.0.1:{refused_port}
    pools: [pool-r]
  - project_id: "{UNRESOLVABLE}"
    region: {REGION}
    endpoint: http://modelarts.invalid
    pools: [pool-u]
"""


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    workdir = tmp_path_factory.mktemp("fault-matrix")
    sim = Simulator(access_keys={AK: SK})
    for pool, counts in COUNTS.items():
        sim.set_pool(PROJECT, pool, counts)
    for job_type in ("train", "inference"):
        sim.set_specs(PROJECT, job_type, default_specs(job_type))
    sim.set_pool(DISCOVERED, "disc-x", pool_counts(1))
    sim.set_pool(DISCOVERED, "disc-y", pool_counts(2))
    iam_clock = ShiftedClock()
    iam_sim = Simulator(iam_users={(DOMAIN, USER): PASSWORD}, clock=iam_clock)
    iam_sim.set_pool(IAM, "pool-i", pool_counts(7))
    holder, port = held_port()
    sims = [sim.start(), iam_sim.start()]
    config = workdir / "config.yaml"
    config.write_text(config_text(sim, iam_sim, port))
    env = {
        **os.environ,
        "HUAWEICLOUD_SDK_AK": AK,
        "HUAWEICLOUD_SDK_SK": SK,
        "MATRIX_IAM_PASSWORD": PASSWORD,
    }
    exporter = start_exporter(config, workdir / "exporter.log", env)
    try:
        with httpx.Client(base_url=exporter.url, timeout=5) as http:
            state = Matrix(exporter, sim, iam_sim, iam_clock, http, port, holder)
            exporter.wait_ready()
            healthy = state.wait_healthy()
            state.baseline = {
                k: v
                for k, v in healthy.samples.items()
                if item_of(k) is not None and k[0] not in COMPUTED
            }
            assert {k[0] for k in state.baseline} >= {"modelarts_spec_info", "modelarts_pool_info"}
            yield state
            if state.refused_sim is not None:
                sims.append(state.refused_sim)
    finally:
        exporter.kill()
        holder.close()
        for simulator in sims:
            simulator.stop()


# ---------------------------------------------------------------------------- tests


def shows(matrix: Matrix, row: Row, before: Scrape, injected: float) -> Callable[[Scrape], bool]:
    """Whether a scrape shows the row's fault in full."""
    project, api = row.items[0].project, row.items[0].api

    def failing(scrape: Scrape) -> bool:
        if any(scrape.success(item) != 0 for item in row.items):
            return False
        assert row.code is not None
        failures = scrape.errors(project, api, row.code) - before.errors(project, api, row.code)
        if failures < row.failures:
            return False
        if row.outcome == GONE and any(scrape.data.get(item) for item in row.items):
            return False
        if row.backoff:
            skipped = "skipped_auth_backoff"
            return scrape.errors(project, api, skipped) > before.errors(project, api, skipped)
        return True

    # Not a failure: the items' data came through the fault, right.
    return fresh_and_right(matrix, row, injected) if row.outcome == DATA else failing


def fresh_and_right(matrix: Matrix, row: Row, since: float) -> Callable[[Scrape], bool]:
    """Whether every item the fault hit has succeeded since ``since`` and shows all the
    data the simulator holds."""

    def check(scrape: Scrape) -> bool:
        wanted, got = matrix.expected_by_item(), scrape.data
        return all(
            scrape.success(item) == 1
            and (scrape.last_success(item) or 0) > since
            and got.get(item) == wanted.get(item)
            for item in row.items
        )

    return check


def requests_of(
    simulator: Simulator, project: str, since: float, until: float
) -> list[RecordedRequest]:
    return [
        r
        for r in simulator.requests()
        if since <= r.time <= until and (project in r.path or r.path.startswith("/v3/"))
    ]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_fault(matrix: Matrix, row: Row) -> None:
    """Under the fault the exporter serves fast, isolates the item, shows the failure as
    documented, and recovers within an interval once it clears."""
    matrix.wait_healthy()
    # Log lines first: a failure published after ``before`` was logged after this.
    logged = matrix.logged(row)
    before = matrix.scrape()
    matrix.durations.clear()
    injected = time.time()
    row.inject(matrix)
    during = matrix.watch(shows(matrix, row, before, injected), 10, row, f"{row.id} shows")
    project = row.items[0].project
    if row.downs:
        # No answer with accepted credentials this cycle (a refused target: every item
        # skipped while it backs off).
        assert during.up(project) == 0
    if row.http == "429":  # the whole target slows down
        rate = during.value("modelarts_request_budget_rate", project_id=project, region=REGION)
        assert rate is not None
        assert rate < 50  # requests_per_second's default
    cleared = time.time()
    row.clear(matrix)
    if row.recovers:
        after = matrix.watch(
            fresh_and_right(matrix, row, cleared), row.recovery + 5, row, "recovery"
        )
        assert after.ended - cleared <= row.recovery, "recovery took too long"
    else:
        after = matrix.scrape()
    slow = [round(d, 3) for d in matrix.durations if d >= SCRAPE_BUDGET]
    assert not slow, f"scrapes over {SCRAPE_BUDGET}s: {slow} of {len(matrix.durations)}"
    if row.code is None:
        assert_no_errors(row, before, after)
        return
    assert_counted(row, before, after)
    now_logged = matrix.logged(row)
    assert all(now_logged[event] > logged[event] for event in row.events), now_logged
    if row.retry_gap:
        assert_retry_waited(matrix, row, injected, cleared)
    if row.attempts == 1 and row.items[0].project in (PROJECT, DISCOVERED):
        assert_not_retried(matrix, injected, cleared)
    if row.extra:
        row.extra(before, after)
    if row.refusal:
        assert_one_refusal_per_cycle(matrix, row, before, after, injected)


def assert_no_errors(row: Row, before: Scrape, after: Scrape) -> None:
    """Not a failure: no error of any code for the item's API."""
    item = row.items[0]
    for (name, labels), value in after.samples.items():
        found = dict(labels)
        if name == "modelarts_poll_errors_total" and (found["project_id"], found["api"]) == (
            item.project,
            item.api,
        ):
            assert value == before.errors(item.project, item.api, found["error_code"]), found


def assert_counted(row: Row, before: Scrape, after: Scrape) -> None:
    """Each failed poll is one error of the row's code and ``attempts`` requests of its
    status (one attempt more or less where a poll straddles a scrape)."""
    item = row.items[0]
    assert row.code is not None
    failures = after.errors(item.project, item.api, row.code) - before.errors(
        item.project, item.api, row.code
    )
    assert failures >= 1
    if row.http and row.http != "200":
        sent = after.requests(item.project, item.api, row.http) - before.requests(
            item.project, item.api, row.http
        )
        spare = row.attempts - 1
        assert row.attempts * failures - spare <= sent <= row.attempts * failures + spare, (
            sent,
            failures,
        )


def assert_one_refusal_per_cycle(
    matrix: Matrix, row: Row, before: Scrape, after: Scrape, injected: float
) -> None:
    """Each refused request is its own cycle's only one, never retried, and nothing more of
    the project is sent until the next cycle; the 401/403 counter counts each."""
    item = row.items[0]
    simulator = matrix.iam_sim if item.project == IAM else matrix.sim
    shift = matrix.iam_clock.shift if item.project == IAM else 0.0
    sent = requests_of(simulator, item.project, injected + shift, after.ended + shift)
    refused = [r for r in sent if r.status in (401, 403) and item.project in r.path]
    assert refused
    assert row.http is not None
    counted = after.requests(item.project, item.api, row.http) - before.requests(
        item.project, item.api, row.http
    )
    labels = {"project_id": item.project, "region": REGION, "api": item.api, "code": row.http}
    assert before.value("modelarts_api_requests_total", **labels) is not None  # starts at 0
    assert counted == len(refused)
    for first, second in itertools.pairwise(refused):
        assert second.time - first.time >= 0.8 * INTERVAL, "two refusals in one cycle"
    for refusal in refused:
        soon = [r for r in sent if refusal.time + 0.1 < r.time < refusal.time + 0.6 * INTERVAL]
        assert not soon, f"asked again in the refused cycle: {soon}"
    if row.backoff:
        assert len(refused) >= 2
        assert_asked_after_backoff(sent, refused[1])


def assert_asked_after_backoff(sent: list[RecordedRequest], second: RecordedRequest) -> None:
    """After two refused cycles in a row the target is next asked two intervals later
    (docs/configuration.md, "Credential safety": at a 60 s interval a refused key is tried
    at minutes 0, 1, 3, 7, 15)."""
    later = [r for r in sent if r.time > second.time + 0.2]
    assert later, "never asked again"
    waited = later[0].time - second.time
    assert 2 * INTERVAL - 0.3 <= waited <= 2 * INTERVAL + 0.5, (
        f"asked again {waited:.2f}s after the second refusal, not 2 s"
    )


def assert_retry_waited(matrix: Matrix, row: Row, injected: float, cleared: float) -> None:
    """The second attempt of a poll came no sooner than the row's retry gap."""
    throttled = [
        r
        for r in requests_of(matrix.sim, PROJECT, injected, cleared)
        if r.status == 429 and ON_FAULTY in r.path
    ]
    gaps = [b.time - a.time for a, b in itertools.pairwise(throttled)]
    retries = [gap for gap in gaps if gap < INTERVAL / 2]
    assert retries, gaps
    assert min(retries) >= row.retry_gap - 0.01, retries


def assert_not_retried(matrix: Matrix, injected: float, cleared: float) -> None:
    """No request (method, path and query) was sent twice in one cycle under the fault."""
    sent: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in matrix.sim.requests():
        if injected <= r.time <= cleared:
            sent[(r.method, r.path, r.query)].append(r.time)
    for request, times in sent.items():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap > INTERVAL / 2 for gap in gaps), (request, gaps)


def test_stale_data_leaves_at_stale_after_and_not_before(matrix: Matrix) -> None:
    """A failing pool's data is shown until its last success is stale_after old, then
    leaves; the other pools stay; it is back within an interval of the fault clearing."""
    matrix.wait_healthy()
    fault = Fault.server_error(503, path_contains="/pool-c/")
    item = Item(PROJECT, WORKLOADS, "pool-c")
    row = Row("stale", on_main(fault), "APIGW.0202", "503", MAX_ATTEMPTS, items=(item,))
    matrix.durations.clear()
    row.inject(matrix)
    seen: list[tuple[float, float, bool]] = []

    def gone_a_while(scrape: Scrape) -> bool:
        last = scrape.last_success(item)
        assert last is not None
        seen.append((scrape.started - last, scrape.ended - last, bool(scrape.data.get(item))))
        return scrape.started - last > STALE_AFTER + 0.5

    matrix.watch(gone_a_while, STALE_AFTER + 5, row, "stale data left")
    # check() asserted each scrape: shown only when younger than stale_after, absent only
    # when older. Seen on both sides, close to it:
    assert any(shown and end > STALE_AFTER - 0.5 for _, end, shown in seen), seen
    assert any(not shown and start < STALE_AFTER + 0.5 for start, _, shown in seen), seen
    cleared = time.time()
    row.clear(matrix)
    after = matrix.watch(fresh_and_right(matrix, row, cleared), row.recovery + 5, row, "recovery")
    assert after.ended - cleared <= row.recovery
    assert max(matrix.durations) < SCRAPE_BUDGET


MATRIX_HEADING = "## When ModelArts misbehaves: the fault matrix\n"


def documented_rows(path: Path) -> list[str]:
    """The fault ids in the first column of the matrix table, under ``MATRIX_HEADING``."""
    section = path.read_text().split(MATRIX_HEADING, 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE)


def test_every_row_is_documented() -> None:
    """docs/troubleshooting.md's fault matrix has one table row per fault of ROWS, and no other."""
    documented = documented_rows(TROUBLESHOOTING)
    assert sorted(documented) == sorted(row.id for row in ROWS)
    assert len(set(documented)) == len(documented)
