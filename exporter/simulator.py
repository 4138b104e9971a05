"""A ModelArts + IAM look-alike on loopback, for tests and the ``demo`` command.

A real HTTP/1.1 server (stdlib ``ThreadingHTTPServer`` in a daemon thread, keep-alive, every
response JSON with ``Content-Length`` and an ``X-Request-Id``) that answers as the seed
documents and ``shared/HUAWEI_API_NOTES.md`` describe:

- ``GET /v2/{project_id}/statistics/pools/{pool}/workloads``: ShowWorkloadStatistics
  (unknown pool: 404 ``ModelArts.50015001``; unknown project: 400 ``ModelArts.50004000``);
- ``GET /v1/{project_id}/job/resource-specs[?job_type=train|inference]``: QueryJobResourceSpecs;
- ``POST /v3/auth/tokens``: IAM password token (``X-Subject-Token``; wrong password: IAM 401);
- anything else: 404 ``APIGW.0101``; ``/_simulator/...``: control, no auth (see below).

The two ModelArts APIs need ``X-Auth-Token`` (a token this simulator issued, unexpired, scoped
to the project) or an ``SDK-HMAC-SHA256`` signature, verified with :mod:`exporter.signing`
over the raw path and query exactly as received. The wire query must also already be the
canonical query (sorted, RFC 3986 encoded), as the notes require of clients. More than five
consecutive failures for one access key lock it for five minutes of the injected clock.

In-process use::

    from exporter.simulator import Fault, Simulator, default_specs

    with Simulator(access_keys={"AK": "SK"}, clock=fake_clock) as sim:
        sim.set_pool(PROJECT, "pool-a", {"train": {"Running": 3, "Completed": 10}})
        sim.set_specs(PROJECT, "train", default_specs("train"))
        sim.inject(Fault.throttled(retry_after=2, times=1))      # next API call: 429
        sim.inject(Fault(path_contains="workloads", variant="statics"))
        ...  # point the client at sim.url
        assert sim.requests()[0].status == 429
        expected = sim.snapshot_state().pools[PROJECT]["pool-a"]

More faults: ``Fault.server_error(503, times=2)``, ``Fault.unauthorized()``,
``Fault.disconnect()``, ``Fault.slow(1.5)``, ``Fault.malformed_json()``,
``Fault(variant="is_success_false")``, ``Fault(variant="oversized")``.

Out of process (``--port 0`` picks a free port; the URL is printed)::

    python -m exporter.simulator --port 18080 --project-id X --pools a,b --ak AK --sk SK
    curl -s localhost:18080/_simulator/state
    curl -X PUT  localhost:18080/_simulator/pools/X/a -d '{"train": {"Running": 2}}'
    curl -X POST localhost:18080/_simulator/faults -d '{"status": 503, "times": 2}'
    curl -X DELETE localhost:18080/_simulator/faults

Control endpoints: ``GET /_simulator/state``; ``PUT|DELETE /_simulator/pools/{project}/{pool}``;
``PUT /_simulator/specs/{project}/{job_type}``; ``POST|DELETE /_simulator/faults``;
``PUT /_simulator/latency`` (``{"seconds": 0.5}``); ``GET|DELETE /_simulator/requests``.
They are not recorded in the request log and are never subject to faults.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hmac
import json
import logging
import random
import secrets
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import FrameType, TracebackType
from typing import TypeVar, cast
from urllib.parse import unquote

from exporter import signing

__all__ = [
    "FAULT_VARIANTS",
    "LOCKOUT_SECONDS",
    "LOCKOUT_THRESHOLD",
    "OVERSIZED_BYTES",
    "SDK_DATE_TOLERANCE_SECONDS",
    "SPEC_FIELDS",
    "SPEC_JOB_TYPES",
    "STATUS_KEYS",
    "WORKLOAD_TYPES",
    "Fault",
    "RecordedRequest",
    "Simulator",
    "SimulatorState",
    "default_specs",
    "main",
]

_logger = logging.getLogger(__name__)

STATUS_KEYS = (
    "Queue",
    "Pending",
    "Abnormal",
    "Terminating",
    "Creating",
    "Running",
    "Completed",
    "Terminated",
    "Failed",
)
"""Documented status keys of a WorkloadStatistics item, in documented order."""

WORKLOAD_TYPES = ("train", "infer", "notebook")
"""Documented job types of ShowWorkloadStatistics."""

SPEC_JOB_TYPES = ("train", "inference")
"""Documented ``job_type`` values of QueryJobResourceSpecs."""

SPEC_FIELDS = (
    "spec_id",
    "core",
    "cpu",
    "gpu_num",
    "gpu_type",
    "spec_code",
    "unit_num",
    "max_num",
    "storage",
    "interface_type",
    "no_resource",
)
"""Fields of one resource spec, in the order of the seed's sample response."""

FAULT_VARIANTS = frozenset(
    {"statics", "string_counts", "is_success_false", "is_success_false_error_msg", "oversized"}
)
LOCKOUT_THRESHOLD = 5
"""More than this many consecutive signature failures lock an access key."""
LOCKOUT_SECONDS = 300.0
SDK_DATE_TOLERANCE_SECONDS = 900.0
OVERSIZED_BYTES = 20 * 1024 * 1024

_WORKLOAD_VARIANTS = frozenset({"statics", "string_counts", "oversized"})
_SPECS_VARIANTS = frozenset({"is_success_false", "is_success_false_error_msg", "oversized"})
_THROTTLE_MSG = (
    "The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 second"
)
_AUTH_PREFIX = "Incorrect IAM authentication information: "
_IAM_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_MAX_CONTROL_BODY = 16 * 1024 * 1024

_T = TypeVar("_T")

PoolCounts = dict[str, dict[str, int]]
"""Job type -> status key (API casing) -> number of jobs."""
Spec = dict[str, object]
"""One resource spec in API JSON form."""


# --------------------------------------------------------------------------- public data


@dataclass(frozen=True)
class Fault:
    """A misbehaviour to inject; see the module docstring for examples.

    ``path_contains`` selects requests whose raw path contains it; ``""`` selects every
    request except IAM (``/v3/...``), which only a non-empty match such as ``"/v3/"``
    selects. A fault with a ``variant`` only selects the API the variant applies to
    (``statics``/``string_counts``: workloads; ``is_success_false*``: resource-specs;
    ``oversized``: both). ``status`` and/or ``body`` replace the answer without checking
    credentials (``body`` defaults to the documented error body for ``status``); otherwise
    the normal answer is produced and ``variant`` reshapes a 200. ``headers`` are added
    either way, ``latency`` seconds are slept first, ``close_connection`` drops the socket
    without answering. ``times`` is how many requests it applies to (None: until cleared).
    """

    path_contains: str = ""
    status: int | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    latency: float = 0.0
    times: int | None = None
    close_connection: bool = False
    variant: str | None = None

    def __post_init__(self) -> None:
        if self.variant is not None and self.variant not in FAULT_VARIANTS:
            raise ValueError(f"unknown fault variant {self.variant!r}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or None)")
        if self.latency < 0:
            raise ValueError("latency must not be negative")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an HTTP status")
        object.__setattr__(self, "headers", dict(self.headers))

    @classmethod
    def throttled(
        cls, retry_after: float | None = None, *, path_contains: str = "", times: int | None = None
    ) -> Fault:
        """429 ``APIGW.0308``, with ``Retry-After`` when given."""
        headers = {} if retry_after is None else {"Retry-After": _format_number(retry_after)}
        body = _json_bytes({"error_code": "APIGW.0308", "error_msg": _THROTTLE_MSG})
        return cls(path_contains=path_contains, status=429, body=body, headers=headers, times=times)

    @classmethod
    def server_error(
        cls, status: int = 500, *, path_contains: str = "", times: int | None = None
    ) -> Fault:
        """A 5xx (500, 502, 503, 504) with the gateway's usual body."""
        return cls(path_contains=path_contains, status=status, times=times)

    @classmethod
    def unauthorized(cls, *, path_contains: str = "", times: int | None = None) -> Fault:
        """401 ``APIGW.0301`` whatever the credentials."""
        return cls(path_contains=path_contains, status=401, times=times)

    @classmethod
    def disconnect(cls, *, path_contains: str = "", times: int | None = None) -> Fault:
        """Close the connection without answering."""
        return cls(path_contains=path_contains, close_connection=True, times=times)

    @classmethod
    def slow(cls, seconds: float, *, path_contains: str = "", times: int | None = None) -> Fault:
        """Answer normally after ``seconds``."""
        return cls(path_contains=path_contains, latency=seconds, times=times)

    @classmethod
    def malformed_json(cls, *, path_contains: str = "", times: int | None = None) -> Fault:
        """200 with a truncated JSON body."""
        return cls(
            path_contains=path_contains, status=200, body=b'{"statistics": {"total": ', times=times
        )

    def to_json(self) -> dict[str, object]:
        """The JSON form accepted by ``POST /_simulator/faults`` and :meth:`from_json`."""
        data: dict[str, object] = {
            "path_contains": self.path_contains,
            "status": self.status,
            "headers": dict(self.headers),
            "latency": self.latency,
            "times": self.times,
            "close_connection": self.close_connection,
            "variant": self.variant,
        }
        if self.body is not None:
            try:
                data["body"] = self.body.decode()
            except UnicodeDecodeError:
                data["body_base64"] = base64.b64encode(self.body).decode()
        return data

    @classmethod
    def from_json(cls, data: object) -> Fault:
        """Build a fault from its JSON form; ``TypeError``/``ValueError`` name the bad field."""
        if not isinstance(data, dict):
            raise TypeError("a fault must be a JSON object")
        unknown = set(data) - {
            "path_contains", "status", "body", "body_base64", "headers", "latency", "times",
            "close_connection", "variant",
        }  # fmt: skip
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        body: bytes | None = None
        if data.get("body") is not None:
            body = _expect(data, "body", str).encode()
        elif data.get("body_base64") is not None:
            body = base64.b64decode(_expect(data, "body_base64", str), validate=True)
        headers = data.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise TypeError("headers must be an object of strings")
        latency = data.get("latency") or 0
        if isinstance(latency, bool) or not isinstance(latency, int | float):
            raise TypeError("latency must be a number")
        return cls(
            path_contains=_expect(data, "path_contains", str, ""),
            status=_expect_optional_int(data, "status"),
            body=body,
            headers=headers,
            latency=float(latency),
            times=_expect_optional_int(data, "times"),
            close_connection=_expect(data, "close_connection", bool, False),
            variant=_expect_optional_str(data, "variant"),
        )


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered (or dropped: ``status`` 0)."""

    time: float
    method: str
    path: str
    query: str
    status: int
    access_key: str | None


@dataclass(frozen=True)
class SimulatorState:
    """Deep copy of the data: project -> pool -> counts; project -> job type -> specs."""

    pools: dict[str, dict[str, PoolCounts]]
    specs: dict[str, dict[str, list[Spec]]]

    def to_json(self) -> dict[str, object]:
        return {"pools": copy.deepcopy(self.pools), "specs": copy.deepcopy(self.specs)}


def default_specs(job_type: str) -> list[Spec]:
    """A realistic spec list for ``train`` or ``inference`` (CPU, GPU and Ascend NPU)."""

    def spec(
        spec_id: int, core: str, cpu: str, gpu_num: int, gpu_type: str, code: str,
        unit_num: int, max_num: int, no_resource: bool,
    ) -> Spec:  # fmt: skip
        values = (spec_id, core, cpu, gpu_num, gpu_type, code, unit_num, max_num, "", 1,
                  no_resource)  # fmt: skip
        return dict(zip(SPEC_FIELDS, values, strict=True))

    if job_type == "train":
        return [
            spec(2, "2", "8", 0, "", "modelarts.vm.cpu.2u", 1, 2, False),
            spec(3, "8", "32", 0, "", "modelarts.vm.cpu.8u", 1, 4, False),
            spec(4, "8", "64", 1, "v100", "modelarts.vm.gpu.v100", 1, 4, False),
            spec(5, "64", "512", 8, "v100", "modelarts.bm.gpu.8v100", 8, 8, True),
            spec(6, "8", "32", 1, "t4", "modelarts.vm.gpu.t4", 1, 4, False),
            spec(7, "192", "1536", 8, "ascend-snt9b3", "modelarts.bm.npu.arm.8snt9b3.d", 8, 16,
                 True),
        ]  # fmt: skip
    if job_type == "inference":
        return [
            spec(101, "2", "8", 0, "", "modelarts.vm.cpu.2u", 1, 1, False),
            spec(102, "4", "16", 0, "", "modelarts.vm.cpu.4u", 1, 1, False),
            spec(103, "8", "32", 1, "t4", "modelarts.vm.gpu.t4", 1, 1, False),
            spec(104, "24", "192", 1, "ascend-snt9b3", "modelarts.vm.npu.arm.1snt9b3", 1, 1,
                 True),
        ]  # fmt: skip
    raise ValueError(f"no default specs for job type {job_type!r}")


# --------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Route:
    kind: str  # "workloads" | "specs" | "iam" | "unknown"
    project_id: str = ""
    name: str = ""  # pool name for workloads


@dataclass
class _ActiveFault:
    fault: Fault
    remaining: int | None


@dataclass(frozen=True)
class _Token:
    project_id: str
    expires_at: float


@dataclass
class _KeyHealth:
    failures: int = 0
    locked_until: float | None = None


@dataclass
class _State:
    pools: dict[str, dict[str, PoolCounts]] = field(default_factory=dict)
    specs: dict[str, dict[str, list[Spec]]] = field(default_factory=dict)
    faults: list[_ActiveFault] = field(default_factory=list)
    latency: float = 0.0
    tokens: dict[str, _Token] = field(default_factory=dict)
    keys: dict[str, _KeyHealth] = field(default_factory=dict)
    requests: deque[RecordedRequest] = field(default_factory=deque)

    def ensure_project(self, project_id: str) -> None:
        self.pools.setdefault(project_id, {})
        self.specs.setdefault(project_id, {})


class _AuthFailure(Exception):
    """Credentials refused; the message is the short reason."""


def _json_bytes(payload: object) -> bytes:
    return json.dumps(payload, separators=(", ", ": ")).encode()


def _json(status: int, payload: object, headers: Mapping[str, str] | None = None) -> _Response:
    return _Response(status, _json_bytes(payload), dict(headers or {}))


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _expect(data: Mapping[str, object], key: str, kind: type[_T], default: _T | None = None) -> _T:
    value = data.get(key, default)
    if not isinstance(value, kind):
        raise TypeError(f"{key} must be a {kind.__name__}")
    return value


def _expect_optional_int(data: Mapping[str, object], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} must be an integer or null")
    return value


def _expect_optional_str(data: Mapping[str, object], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} must be a string or null")
    return value


def _dig(data: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _validate_counts(counts: object) -> PoolCounts:
    if not isinstance(counts, Mapping):
        raise TypeError("counts must map job type to {status: count}")
    result: PoolCounts = {}
    for job_type, statuses in counts.items():
        if not isinstance(job_type, str) or not isinstance(statuses, Mapping):
            raise TypeError(f"counts[{job_type!r}] must map status to count")
        row: dict[str, int] = {}
        for status, count in statuses.items():
            if not isinstance(status, str):
                raise TypeError(f"status keys of {job_type!r} must be strings")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"counts[{job_type!r}][{status!r}] must be an integer >= 0")
            row[status] = count
        result[job_type] = row
    return result


def _validate_specs(specs: object) -> list[Spec]:
    if isinstance(specs, str | bytes) or not isinstance(specs, Sequence):
        raise TypeError("specs must be a list of objects")
    result: list[Spec] = []
    for spec in specs:
        if not isinstance(spec, Mapping) or not all(isinstance(k, str) for k in spec):
            raise TypeError("each spec must be an object")
        try:
            copied = json.loads(json.dumps(dict(spec)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"spec is not JSON-serialisable: {exc}") from exc
        ordered: Spec = {k: copied[k] for k in SPEC_FIELDS if k in copied}
        ordered.update({k: v for k, v in copied.items() if k not in ordered})
        result.append(ordered)
    return result


def _route(method: str, path: str) -> _Route:
    parts = path.split("/")
    if (
        method == "GET"
        and len(parts) == 7
        and parts[:2] == ["", "v2"]
        and parts[3:5] == ["statistics", "pools"]
        and parts[6] == "workloads"
        and parts[2]
        and parts[5]
    ):
        return _Route("workloads", unquote(parts[2]), unquote(parts[5]))
    if (
        method == "GET"
        and len(parts) == 5
        and parts[:2] == ["", "v1"]
        and parts[3:] == ["job", "resource-specs"]
        and parts[2]
    ):
        return _Route("specs", unquote(parts[2]))
    if method == "POST" and path == "/v3/auth/tokens":
        return _Route("iam")
    return _Route("unknown")


def _fault_matches(fault: Fault, path: str, kind: str) -> bool:
    if fault.path_contains not in path:
        return False
    if not fault.path_contains and path.startswith("/v3/"):
        return False
    if fault.variant is None or fault.status is not None or fault.body is not None:
        return True
    allowed = _WORKLOAD_VARIANTS if kind == "workloads" else _SPECS_VARIANTS
    return kind in ("workloads", "specs") and fault.variant in allowed


def _fault_body(status: int) -> bytes:
    """The documented (or usual gateway) error body for an injected status."""
    bodies: dict[int, dict[str, str]] = {
        400: {"error_code": "ModelArts.50004000", "error_msg": "Bad request."},
        401: {"error_code": "APIGW.0301", "error_msg": _AUTH_PREFIX + "injected fault"},
        403: {"error_code": "APIGW.0302", "error_msg": "The IAM user is forbidden."},
        404: {
            "error_code": "APIGW.0101",
            "error_msg": "The API does not exist or has not been published in the environment",
        },
        429: {"error_code": "APIGW.0308", "error_msg": _THROTTLE_MSG},
        502: {"error_code": "APIGW.0202", "error_msg": "Backend unavailable"},
        503: {"error_code": "APIGW.0202", "error_msg": "Backend unavailable"},
        504: {"error_code": "APIGW.0203", "error_msg": "Backend timeout"},
    }
    if status in bodies:
        return _json_bytes(bodies[status])
    if status >= 500:
        return _json_bytes({"error_code": "ModelArts.50005000", "error_msg": "Internal error."})
    if status >= 400:
        return _json_bytes({"error_code": "ModelArts.50004000", "error_msg": "Bad request."})
    return b"{}"


def _stringify_statistics(payload: dict[str, object], key: str) -> dict[str, object]:
    stats = cast(dict[str, object], payload["statistics"])
    items = cast(list[dict[str, object]], stats["items"])
    return {
        key: {
            "total": str(stats["total"]),
            "items": [
                {
                    "type": item["type"],
                    "total": str(item["total"]),
                    "status": {k: str(v) for k, v in cast(dict[str, int], item["status"]).items()},
                }
                for item in items
            ],
        }
    }


def _apply_variant(variant: str, response: _Response) -> _Response:
    if variant in ("statics", "string_counts"):
        payload = json.loads(response.body)
        key = "statics" if variant == "statics" else "statistics"
        return replace(response, body=_json_bytes(_stringify_statistics(payload, key)))
    if variant in ("is_success_false", "is_success_false_error_msg"):
        message_key = "error_message" if variant == "is_success_false" else "error_msg"
        failure = {"is_success": False, message_key: "Error string", "error_code": "ModelArts.0105"}
        return replace(response, body=_json_bytes(failure))
    if variant == "oversized":
        padding = b" " * max(0, OVERSIZED_BYTES - len(response.body))
        return replace(response, body=response.body[:1] + padding + response.body[1:])
    return response


def _auth_error(reason: str) -> _Response:
    return _json(401, {"error_code": "APIGW.0301", "error_msg": _AUTH_PREFIX + reason})


def _bad_request() -> _Response:
    return _json(400, {"error_code": "ModelArts.50004000", "error_msg": "Bad request."})


def _api_not_found() -> _Response:
    return _json(
        404,
        {
            "error_code": "APIGW.0101",
            "error_msg": "The API does not exist or has not been published in the environment",
        },
    )


def _iam_error(code: int, title: str, message: str) -> _Response:
    return _json(code, {"error": {"code": code, "message": message, "title": title}})


# --------------------------------------------------------------------------- drift


_TRANSITIONS = (
    ("Queue", "Pending"),
    ("Pending", "Creating"),
    ("Creating", "Running"),
    ("Running", "Completed"),
    ("Running", "Completed"),
    ("Running", "Failed"),
    ("Running", "Terminating"),
    ("Terminating", "Terminated"),
    ("Running", "Abnormal"),
    ("Abnormal", "Running"),
    ("Abnormal", "Failed"),
)


def _drift_counts(statuses: dict[str, int], rng: random.Random) -> None:
    for key in STATUS_KEYS:
        statuses.setdefault(key, 0)
    for src, dst in rng.sample(_TRANSITIONS, k=3):
        available = statuses[src]
        if available > 0:
            moved = rng.randint(1, min(available, 3))
            statuses[src] -= moved
            statuses[dst] += moved
    if rng.random() < 0.4:
        statuses["Queue"] += rng.randint(1, 2)
    if rng.random() < 0.05:
        statuses["Abnormal"] += 1
    if rng.random() < 0.05:
        statuses["Failed"] += 1
    if rng.random() < 0.1:  # finished jobs get deleted now and then
        for key in ("Completed", "Terminated", "Failed"):
            statuses[key] = max(0, statuses[key] - rng.randint(0, 2))


def _demo_counts(job_type: str, rng: random.Random) -> dict[str, int]:
    ranges = {
        "train": {"Queue": 2, "Pending": 2, "Creating": 1, "Running": 6, "Completed": 40,
                  "Terminated": 5, "Failed": 3},
        "infer": {"Pending": 1, "Creating": 1, "Running": 4, "Terminated": 3, "Failed": 1},
        "notebook": {"Pending": 1, "Running": 5, "Terminated": 6, "Failed": 1},
    }  # fmt: skip
    upper = ranges.get(job_type, {})
    counts = {key: rng.randint(0, upper.get(key, 0)) for key in STATUS_KEYS}
    counts["Running"] = max(1, counts["Running"])
    return counts


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); loopback needs none.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ModelArtsSimulator/1.0"
    timeout = 120

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cast(_Server, self.server).track(self.connection)

    def finish(self) -> None:
        cast(_Server, self.server).untrack(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        _logger.debug("simulator_http " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        simulator = cast(_Server, self.server).simulator
        raw_path, _, raw_query = self.path.partition("?")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_CONTROL_BODY:
            self.close_connection = True
            self._write(_bad_request())
            return
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = _Request(self.command, raw_path, raw_query, headers, body)
        try:
            response = simulator._respond(request)
        except Exception:
            _logger.exception("simulator_handler_failed")
            response = _json(500, {"error_code": "ModelArts.50005000", "error_msg": "Internal."})
        if response is None:
            self.close_connection = True
            return
        self._write(response)

    def _write(self, response: _Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("X-Request-Id", secrets.token_hex(16))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Simulator:
    """ModelArts + IAM on loopback; thread-safe; see the module docstring.

    ``access_keys`` maps AK to SK; ``security_tokens`` marks AKs as temporary credentials
    that must send (and sign) ``X-Security-Token``; ``iam_users`` maps (domain, user) to
    password for ``POST /v3/auth/tokens``. ``clock`` drives token expiry, the X-Sdk-Date
    window, AK lockout and the request log; sleeps (latency) use real time.
    """

    def __init__(
        self,
        *,
        access_keys: Mapping[str, str] | None = None,
        security_tokens: Mapping[str, str] | None = None,
        iam_users: Mapping[tuple[str, str], str] | None = None,
        token_lifetime_seconds: float = 86400.0,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
        max_recorded_requests: int = 10_000,
    ) -> None:
        self._access_keys = dict(access_keys or {})
        self._security_tokens = dict(security_tokens or {})
        self._iam_users = dict(iam_users or {})
        self._token_lifetime = float(token_lifetime_seconds)
        self._clock = clock
        self._host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._state = _State(requests=deque(maxlen=max_recorded_requests))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Simulator:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        server = _Server((self._host, self._requested_port), self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"modelarts-simulator-{server.server_port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open keep-alive connections. Idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return self._server.server_port

    @property
    def url(self) -> str:
        """``http://host:port`` without a trailing slash."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    # ---------------------------------------------------------------- data

    def add_project(self, project_id: str) -> None:
        """Make a project known without pools (unknown projects get 400)."""
        with self._lock:
            self._state.ensure_project(project_id)

    def set_pool(self, project_id: str, pool: str, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Set a pool's job counts: job type -> status key ("Running") -> count."""
        validated = _validate_counts(counts)
        with self._lock:
            self._state.ensure_project(project_id)
            self._state.pools[project_id][pool] = validated

    def remove_pool(self, project_id: str, pool: str) -> bool:
        """Remove a pool (the API then answers 404 ModelArts.50015001); True if it existed."""
        with self._lock:
            return self._state.pools.get(project_id, {}).pop(pool, None) is not None

    def set_specs(
        self, project_id: str, job_type: str, specs: Sequence[Mapping[str, object]]
    ) -> None:
        """Set the resource specs (API JSON form) listed for ``job_type``."""
        validated = _validate_specs(specs)
        with self._lock:
            self._state.ensure_project(project_id)
            self._state.specs[project_id][job_type] = validated

    def snapshot_state(self) -> SimulatorState:
        """A deep copy of every project's pools and specs."""
        with self._lock:
            return SimulatorState(
                pools=copy.deepcopy(self._state.pools), specs=copy.deepcopy(self._state.specs)
            )

    # ---------------------------------------------------------------- faults

    def inject(self, fault: Fault) -> None:
        """Add a fault after the existing ones (first match wins)."""
        with self._lock:
            self._state.faults.append(_ActiveFault(fault, fault.times))

    def clear_faults(self) -> None:
        with self._lock:
            self._state.faults.clear()

    def set_latency(self, seconds: float) -> None:
        """Sleep this long before answering every non-control request."""
        if seconds < 0:
            raise ValueError("latency must not be negative")
        with self._lock:
            self._state.latency = float(seconds)

    # ---------------------------------------------------------------- observation

    def requests(self) -> list[RecordedRequest]:
        """Every API/IAM request so far (control requests excluded), oldest first."""
        with self._lock:
            return list(self._state.requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._state.requests.clear()

    def is_locked(self, access_key: str) -> bool:
        """Whether ``access_key`` is locked out now (by the simulator clock)."""
        now = self._clock()
        with self._lock:
            health = self._state.keys.get(access_key)
            return bool(health and health.locked_until is not None and now < health.locked_until)

    def failure_count(self, access_key: str) -> int:
        """Consecutive authentication failures of ``access_key`` since its last success."""
        with self._lock:
            health = self._state.keys.get(access_key)
            return health.failures if health else 0

    # ---------------------------------------------------------------- demo

    def seed_demo(self, project_id: str, pools: Sequence[str], rng: random.Random) -> None:
        """Fill a realistic start: train/infer/notebook counts per pool, default specs."""
        for pool in pools:
            self.set_pool(project_id, pool, {t: _demo_counts(t, rng) for t in WORKLOAD_TYPES})
        for job_type in SPEC_JOB_TYPES:
            self.set_specs(project_id, job_type, default_specs(job_type))

    def drift(self, rng: random.Random) -> None:
        """Move jobs between statuses, add some, and now and then flip a spec's no_resource."""
        with self._lock:
            for project_pools in self._state.pools.values():
                for counts in project_pools.values():
                    for statuses in counts.values():
                        _drift_counts(statuses, rng)
            specs = [
                spec
                for by_type in self._state.specs.values()
                for spec_list in by_type.values()
                for spec in spec_list
            ]
            if specs and rng.random() < 0.2:
                spec = rng.choice(specs)
                spec["no_resource"] = not bool(spec.get("no_resource"))

    # ---------------------------------------------------------------- request handling

    def _respond(self, request: _Request) -> _Response | None:
        """Answer one request (called from handler threads); None: drop the connection."""
        if request.path == "/_simulator" or request.path.startswith("/_simulator/"):
            return self._control(request)
        arrived = self._clock()
        route = _route(request.method, request.path)
        with self._lock:
            fault = self._take_fault(request.path, route.kind)
            delay = self._state.latency + (fault.latency if fault else 0.0)
        if delay > 0:
            time.sleep(delay)
        response: _Response | None
        if fault is not None and fault.close_connection:
            response = None
        elif fault is not None and (fault.status is not None or fault.body is not None):
            status = 200 if fault.status is None else fault.status
            body = _fault_body(status) if fault.body is None else fault.body
            response = _Response(status, body, dict(fault.headers))
        else:
            response = self._serve(route, request)
            if fault is not None:
                if fault.variant is not None and response.status == 200:
                    response = _apply_variant(fault.variant, response)
                response = replace(response, headers={**response.headers, **fault.headers})
        parsed = signing.parse_authorization(request.headers.get("authorization", ""))
        record = RecordedRequest(
            time=arrived,
            method=request.method,
            path=request.path,
            query=request.query,
            status=0 if response is None else response.status,
            access_key=parsed.access_key if parsed else None,
        )
        with self._lock:
            self._state.requests.append(record)
        return response

    def _take_fault(self, path: str, kind: str) -> Fault | None:
        """First matching fault, counted down; caller holds the lock."""
        faults = self._state.faults
        for index, active in enumerate(faults):
            if _fault_matches(active.fault, path, kind):
                if active.remaining is not None:
                    active.remaining -= 1
                    if active.remaining <= 0:
                        del faults[index]
                return active.fault
        return None

    def _serve(self, route: _Route, request: _Request) -> _Response:
        if route.kind == "iam":
            return self._issue_token(request)
        if route.kind == "unknown":
            return _api_not_found()
        try:
            self._authenticate(request, route.project_id)
        except _AuthFailure as failure:
            return _auth_error(str(failure))
        if route.kind == "workloads":
            return self._workloads(route.project_id, route.name)
        return self._resource_specs(route.project_id, request.query)

    def _workloads(self, project_id: str, pool: str) -> _Response:
        with self._lock:
            if project_id not in self._state.pools:
                return _bad_request()
            counts = copy.deepcopy(self._state.pools[project_id].get(pool))
        if counts is None:
            return _json(
                404, {"error_code": "ModelArts.50015001", "error_msg": f"Pool {pool} not found."}
            )
        items: list[dict[str, object]] = []
        for job_type, statuses in counts.items():
            status = {key: statuses.get(key, 0) for key in STATUS_KEYS}
            status.update({k: v for k, v in statuses.items() if k not in status})
            items.append({"type": job_type, "total": sum(status.values()), "status": status})
        return _json(200, {"statistics": {"total": len(items), "items": items}})

    def _resource_specs(self, project_id: str, query: str) -> _Response:
        params = dict(signing.parse_query(query))
        job_type = params.get("job_type")
        with self._lock:
            by_type = copy.deepcopy(self._state.specs.get(project_id))
        if by_type is None:
            return _bad_request()
        if job_type is not None:
            if job_type not in SPEC_JOB_TYPES and job_type not in by_type:
                return _bad_request()
            specs = by_type.get(job_type, [])
        else:
            order = [*SPEC_JOB_TYPES, *(t for t in by_type if t not in SPEC_JOB_TYPES)]
            specs = [spec for t in order for spec in by_type.get(t, [])]
        return _json(200, {"specs": specs, "is_success": True, "spec_total_count": len(specs)})

    # ---------------------------------------------------------------- auth

    def _issue_token(self, request: _Request) -> _Response:
        try:
            data: object = json.loads(request.body)
        except ValueError:
            data = None
        identity = _dig(data, "auth", "identity")
        methods = _dig(identity, "methods")
        user = _dig(identity, "password", "user")
        name, password = _dig(user, "name"), _dig(user, "password")
        domain = _dig(user, "domain", "name")
        project_id = _dig(data, "auth", "scope", "project", "id")
        if not (
            isinstance(methods, list)
            and "password" in methods
            and isinstance(name, str)
            and isinstance(password, str)
            and isinstance(domain, str)
            and isinstance(project_id, str)
            and project_id
        ):
            return _iam_error(400, "Bad Request", "The request body is invalid.")
        expected = self._iam_users.get((domain, name))
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return _iam_error(401, "Unauthorized", "The username or password is wrong.")
        now = self._clock()
        expires_at = now + self._token_lifetime
        token = "MII" + secrets.token_urlsafe(96)
        with self._lock:
            self._state.tokens[token] = _Token(project_id, expires_at)
        body = {
            "token": {
                "expires_at": _iam_time(expires_at),
                "issued_at": _iam_time(now),
                "methods": ["password"],
                "project": {"id": project_id},
                "user": {"name": name, "domain": {"name": domain}},
            }
        }
        return _json(201, body, {"X-Subject-Token": token})

    def _authenticate(self, request: _Request, project_id: str) -> None:
        """Raise ``_AuthFailure`` unless the request carries valid credentials."""
        token = request.headers.get("x-auth-token")
        if token is not None:
            with self._lock:
                issued = self._state.tokens.get(token)
            if issued is None:
                raise _AuthFailure("the token is invalid")
            if self._clock() >= issued.expires_at:
                raise _AuthFailure("the token has expired")
            if issued.project_id != project_id:
                raise _AuthFailure("the token is not scoped to this project")
            return
        header = request.headers.get("authorization")
        if header is None:
            raise _AuthFailure("no X-Auth-Token or Authorization header")
        parsed = signing.parse_authorization(header)
        if parsed is None:
            raise _AuthFailure("malformed SDK-HMAC-SHA256 Authorization header")
        secret_key = self._access_keys.get(parsed.access_key)
        if secret_key is None:
            raise _AuthFailure("unknown access key")
        now = self._clock()
        with self._lock:
            health = self._state.keys.setdefault(parsed.access_key, _KeyHealth())
            if health.locked_until is not None:
                if now < health.locked_until:
                    left = _format_number(round(health.locked_until - now))
                    raise _AuthFailure(
                        f"the access key is locked after too many failures; retry in {left} s"
                    )
                health.locked_until = None
                health.failures = 0
        try:
            self._verify_signature(request, parsed, secret_key, now)
        except _AuthFailure:
            with self._lock:
                health.failures += 1
                if health.failures > LOCKOUT_THRESHOLD:
                    health.locked_until = now + LOCKOUT_SECONDS
                    health.failures = 0
            raise
        with self._lock:
            health.failures = 0

    def _verify_signature(
        self, request: _Request, parsed: signing.Authorization, secret_key: str, now: float
    ) -> None:
        signed = parsed.signed_headers
        if "host" not in signed or "x-sdk-date" not in signed:
            raise _AuthFailure("host and x-sdk-date must be signed")
        missing = [name for name in signed if name not in request.headers]
        if missing:
            raise _AuthFailure(f"signed header {missing[0]} is missing")
        sdk_date = request.headers["x-sdk-date"]
        try:
            moment = datetime.strptime(sdk_date, signing.DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise _AuthFailure("malformed X-Sdk-Date") from None
        if abs(now - moment.timestamp()) > SDK_DATE_TOLERANCE_SECONDS:
            raise _AuthFailure("X-Sdk-Date is more than 15 minutes from server time")
        expected_token = self._security_tokens.get(parsed.access_key)
        sent_token = request.headers.get("x-security-token")
        if expected_token is not None:
            if sent_token is None or not hmac.compare_digest(
                expected_token.encode(), sent_token.encode()
            ):
                raise _AuthFailure("X-Security-Token is missing or wrong")
            if "x-security-token" not in signed:
                raise _AuthFailure("X-Security-Token must be signed")
        elif sent_token is not None:
            raise _AuthFailure("X-Security-Token sent with a permanent access key")
        if request.query != signing.canonical_query(signing.parse_query(request.query)):
            raise _AuthFailure("the query string is not in canonical form (sorted, encoded)")
        canonical = signing.canonical_request(
            request.method, request.path, request.query, request.headers, signed, request.body
        )
        expected = signing.sign(secret_key, sdk_date, canonical)
        if not hmac.compare_digest(expected, parsed.signature):
            raise _AuthFailure("verify aksk signature fail")

    # ---------------------------------------------------------------- control

    def _control(self, request: _Request) -> _Response:
        parts = [unquote(p) for p in request.path.split("/")[2:]]
        method = request.method
        try:
            payload: object = json.loads(request.body) if request.body else None
        except ValueError:
            return _json(400, {"error": "body is not JSON"})
        try:
            return self._control_action(method, parts, payload)
        except (TypeError, ValueError) as exc:
            return _json(400, {"error": str(exc)})

    def _control_action(self, method: str, parts: list[str], payload: object) -> _Response:
        match (method, parts):
            case ("GET", ["state"]):
                return _json(200, self.snapshot_state().to_json())
            case ("PUT", ["pools", project_id, pool]):
                self.set_pool(project_id, pool, _validate_counts(payload))
                return _json(200, {"pools": {project_id: {pool: payload}}})
            case ("DELETE", ["pools", project_id, pool]):
                return _json(200, {"removed": self.remove_pool(project_id, pool)})
            case ("PUT", ["specs", project_id, job_type]):
                self.set_specs(project_id, job_type, _validate_specs(payload))
                return _json(200, {"specs": {project_id: {job_type: payload}}})
            case ("POST", ["faults"]):
                fault = Fault.from_json(payload)
                self.inject(fault)
                return _json(201, fault.to_json())
            case ("DELETE", ["faults"]):
                self.clear_faults()
                return _json(200, {"faults": []})
            case ("PUT", ["latency"]):
                seconds = _dig(payload, "seconds")
                if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                    raise TypeError('body must be {"seconds": <number>}')
                self.set_latency(float(seconds))
                return _json(200, {"seconds": float(seconds)})
            case ("GET", ["requests"]):
                return _json(200, {"requests": [asdict(r) for r in self.requests()]})
            case ("DELETE", ["requests"]):
                self.clear_requests()
                return _json(200, {"requests": []})
        return _json(404, {"error": f"no control endpoint {method} /_simulator/{'/'.join(parts)}"})


def _iam_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime(_IAM_TIME_FORMAT)


# --------------------------------------------------------------------------- command line


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.simulator",
        description="Run the ModelArts simulator in the foreground with drifting demo data.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080, help="0 picks a free port")
    parser.add_argument("--project-id", default="0123456789abcdef0123456789abcdef")
    parser.add_argument("--pools", default="pool-a,pool-b", help="comma-separated pool names")
    parser.add_argument("--ak", default="SIMULATORACCESSKEY01", help="access key")
    parser.add_argument("--sk", default="simulator-secret-key", help="secret key")
    parser.add_argument("--security-token", help="make the AK temporary: require this token")
    parser.add_argument("--iam-domain", help="IAM account (domain) name")
    parser.add_argument("--iam-user", help="IAM user name")
    parser.add_argument("--iam-password", help="IAM user password")
    parser.add_argument("--token-lifetime", type=float, default=86400.0, help="seconds")
    parser.add_argument("--drift-interval", type=float, default=5.0, help="seconds; 0 = off")
    parser.add_argument("--seed", type=int, help="random seed for demo data and drift")
    args = parser.parse_args(argv)
    iam = (args.iam_domain, args.iam_user, args.iam_password)
    if any(iam) and not all(iam):
        parser.error("--iam-domain, --iam-user and --iam-password go together")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Serve demo data until SIGINT/SIGTERM; prints the URL first."""
    args = _parse_args(argv)
    pools = [p.strip() for p in args.pools.split(",") if p.strip()]
    rng = random.Random(args.seed)
    iam_users = {}
    if args.iam_user:
        iam_users[(args.iam_domain, args.iam_user)] = args.iam_password
    simulator = Simulator(
        access_keys={args.ak: args.sk},
        security_tokens={args.ak: args.security_token} if args.security_token else None,
        iam_users=iam_users,
        token_lifetime_seconds=args.token_lifetime,
        host=args.host,
        port=args.port,
    )
    simulator.seed_demo(args.project_id, pools, rng)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            simulator.start()
        except OSError as exc:
            print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(f"ModelArts simulator listening on {simulator.url}", flush=True)
        print(f"project {args.project_id}, pools {','.join(pools)}, AK {args.ak}", flush=True)
        interval = args.drift_interval if args.drift_interval > 0 else None
        while not stop.wait(interval):
            simulator.drift(rng)
    finally:
        simulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
