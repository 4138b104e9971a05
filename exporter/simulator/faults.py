"""Injected misbehaviour: :class:`Fault`, which requests it selects, and what it answers.

A fault either replaces the answer (``status``/``body``, with the documented error body by
default), drops the connection, or lets the normal answer through and reshapes a 200 into
one of the odd forms seen in the field (``variant``). Plain data in, plain data out: the
simulator holds the active faults and its lock.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

from exporter.simulator.wire import (
    _AUTH_PREFIX,
    _THROTTLE_MSG,
    _format_number,
    _json_bytes,
    _Response,
)

__all__ = ["FAULT_APIS", "FAULT_VARIANTS", "OVERSIZED_BYTES", "Fault"]

FAULT_APIS = frozenset({"workloads", "specs", "pools", "iam"})
"""What ``Fault.api`` may name: ShowWorkloadStatistics, QueryJobResourceSpecs, ListPools, IAM."""

_VARIANT_APIS: dict[str, frozenset[str]] = {
    "statics": frozenset({"workloads"}),
    "string_counts": frozenset({"workloads"}),
    "sparse": frozenset({"workloads"}),
    "is_success_false": frozenset({"specs"}),
    "is_success_false_error_msg": frozenset({"specs"}),
    "oversized": frozenset({"workloads", "specs", "pools"}),
}
FAULT_VARIANTS = frozenset(_VARIANT_APIS)
OVERSIZED_BYTES = 20 * 1024 * 1024

_T = TypeVar("_T")


@dataclass(frozen=True)
class Fault:
    """A misbehaviour to inject; see the :mod:`exporter.simulator` docstring for examples.

    ``path_contains`` selects requests whose raw path contains it; ``""`` selects every
    request except IAM (``/v3/...``), which only a non-empty match such as ``"/v3/"`` or
    ``api="iam"`` selects. ``api`` (one of :data:`FAULT_APIS`: ``"workloads"``, ``"specs"``,
    ``"pools"`` for ListPools, ``"iam"``) selects only that API's requests; it tells ListPools
    (``/v2/{project}/pools``) from workloads (``/v2/{project}/statistics/pools/...``), which
    ``path_contains="pools"`` does not. A fault with a ``variant`` only selects the APIs the
    variant applies to (``statics``/``string_counts``/``sparse``: workloads; ``is_success_false*``:
    resource-specs; ``oversized``: all three). ``status`` and/or ``body`` replace the answer
    without checking credentials (``body`` defaults to the documented error body for
    ``status``); otherwise the normal answer is produced and ``variant`` reshapes a 200.
    ``headers`` are added either way, ``latency`` seconds are slept first,
    ``close_connection`` drops the socket without answering. ``times`` is how many requests
    it applies to (None: until cleared).
    """

    path_contains: str = ""
    status: int | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    latency: float = 0.0
    times: int | None = None
    close_connection: bool = False
    variant: str | None = None
    api: str | None = None

    def __post_init__(self) -> None:
        if self.variant is not None and self.variant not in FAULT_VARIANTS:
            raise ValueError(f"unknown fault variant {self.variant!r}")
        if self.api is not None and self.api not in FAULT_APIS:
            raise ValueError(f"unknown fault api {self.api!r}; known: {sorted(FAULT_APIS)}")
        if self.api and self.variant and self.api not in _VARIANT_APIS[self.variant]:
            raise ValueError(f"variant {self.variant!r} never applies to api {self.api!r}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1 (or None)")
        if self.latency < 0:
            raise ValueError("latency must not be negative")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an HTTP status")
        object.__setattr__(self, "headers", dict(self.headers))

    @classmethod
    def throttled(
        cls,
        retry_after: float | None = None,
        *,
        path_contains: str = "",
        times: int | None = None,
        api: str | None = None,
    ) -> Fault:
        """429 ``APIGW.0308``, with ``Retry-After`` when given."""
        headers = {} if retry_after is None else {"Retry-After": _format_number(retry_after)}
        body = _json_bytes({"error_code": "APIGW.0308", "error_msg": _THROTTLE_MSG})
        return cls(
            path_contains=path_contains,
            status=429,
            body=body,
            headers=headers,
            times=times,
            api=api,
        )

    @classmethod
    def server_error(
        cls,
        status: int = 500,
        *,
        path_contains: str = "",
        times: int | None = None,
        api: str | None = None,
    ) -> Fault:
        """A 5xx (500, 502, 503, 504) with the gateway's usual body."""
        return cls(path_contains=path_contains, status=status, times=times, api=api)

    @classmethod
    def unauthorized(
        cls, *, path_contains: str = "", times: int | None = None, api: str | None = None
    ) -> Fault:
        """401 ``APIGW.0301`` whatever the credentials."""
        return cls(path_contains=path_contains, status=401, times=times, api=api)

    @classmethod
    def disconnect(
        cls, *, path_contains: str = "", times: int | None = None, api: str | None = None
    ) -> Fault:
        """Close the connection without answering."""
        return cls(path_contains=path_contains, close_connection=True, times=times, api=api)

    @classmethod
    def slow(
        cls,
        seconds: float,
        *,
        path_contains: str = "",
        times: int | None = None,
        api: str | None = None,
    ) -> Fault:
        """Answer normally after ``seconds``."""
        return cls(path_contains=path_contains, latency=seconds, times=times, api=api)

    @classmethod
    def malformed_json(
        cls, *, path_contains: str = "", times: int | None = None, api: str | None = None
    ) -> Fault:
        """200 with a truncated JSON body."""
        body = b'{"statistics": {"total": '
        return cls(path_contains=path_contains, status=200, body=body, times=times, api=api)

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
            "api": self.api,
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
            "close_connection", "variant", "api",
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
            api=_expect_optional_str(data, "api"),
        )


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


# --------------------------------------------------------------------------- matching


@dataclass
class _ActiveFault:
    fault: Fault
    remaining: int | None


def _fault_matches(fault: Fault, path: str, kind: str) -> bool:
    """Whether ``fault`` selects a request for ``path``, which routes to API ``kind``."""
    if fault.path_contains not in path or fault.api not in (None, kind):
        return False
    if not fault.path_contains and fault.api is None and path.startswith("/v3/"):
        return False
    if fault.variant is None or fault.status is not None or fault.body is not None:
        return True
    return kind in _VARIANT_APIS[fault.variant]


def _take_fault(faults: list[_ActiveFault], path: str, kind: str) -> Fault | None:
    """First matching fault, counted down; caller holds the lock."""
    for index, active in enumerate(faults):
        if _fault_matches(active.fault, path, kind):
            if active.remaining is not None:
                active.remaining -= 1
                if active.remaining <= 0:
                    del faults[index]
            return active.fault
    return None


# --------------------------------------------------------------------------- answers


def _answer_with(fault: Fault | None, serve: Callable[[], _Response]) -> _Response | None:
    """The answer under ``fault``: None (drop the connection), a replacement, or ``serve()``."""
    if fault is not None and fault.close_connection:
        return None
    if fault is not None and (fault.status is not None or fault.body is not None):
        status = 200 if fault.status is None else fault.status
        body = _fault_body(status) if fault.body is None else fault.body
        return _Response(status, body, dict(fault.headers))
    response = serve()
    if fault is not None:
        if fault.variant is not None and response.status == 200:
            response = _apply_variant(fault.variant, response)
        response = replace(response, headers={**response.headers, **fault.headers})
    return response


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


def _sparse_statistics(payload: dict[str, object]) -> dict[str, object]:
    """Only what is not zero: statuses without jobs and job types without jobs left out."""
    stats = cast(dict[str, object], payload["statistics"])
    items = [
        {**item, "status": {k: v for k, v in item["status"].items() if v}}
        for item in cast(list[dict[str, Any]], stats["items"])
        if item["total"]
    ]
    return {"statistics": {"total": len(items), "items": items}}


def _apply_variant(variant: str, response: _Response) -> _Response:
    if variant == "sparse":
        payload = json.loads(response.body)
        return replace(response, body=_json_bytes(_sparse_statistics(payload)))
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
