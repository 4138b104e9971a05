"""The simulator's wire format, as plain values: requests, responses, routes, JSON bodies.

Which API a method and raw path name (:func:`_route`), the documented answers of
ShowWorkloadStatistics, QueryJobResourceSpecs and ListPools, and the gateway, ModelArts and
IAM error bodies. No sockets and no state here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from exporter.simulator.data import SPEC_JOB_TYPES, STATUS_KEYS, PoolCounts, Spec, _PoolInfo

__all__: list[str] = []

_THROTTLE_MSG = (
    "The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 second"
)
_AUTH_PREFIX = "Incorrect IAM authentication information: "


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
    # "workloads" | "specs" | "pools" | "iam" | "securitykey" | "metadata_token" | "unknown"
    kind: str
    project_id: str = ""
    name: str = ""  # pool name for workloads


def _json_bytes(payload: object) -> bytes:
    return json.dumps(payload, separators=(", ", ": ")).encode()


def _json(status: int, payload: object, headers: Mapping[str, str] | None = None) -> _Response:
    return _Response(status, _json_bytes(payload), dict(headers or {}))


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _dig(data: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


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
    if (
        method == "GET"
        and len(parts) == 4
        and parts[:2] == ["", "v2"]
        and parts[3] == "pools"
        and parts[2]
    ):
        return _Route("pools", unquote(parts[2]))
    if method == "POST" and path == "/v3/auth/tokens":
        return _Route("iam")
    if method == "GET" and path == "/openstack/latest/securitykey":
        return _Route("securitykey")
    if method == "PUT" and path == "/meta-data/latest/api/token":
        return _Route("metadata_token")
    return _Route("unknown")


# --------------------------------------------------------------------------- API answers


def _workloads_answer(pool: str, counts: PoolCounts | None) -> _Response:
    """ShowWorkloadStatistics for a known project: the pool's counts, or 404 when unknown."""
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


def _specs_answer(by_type: dict[str, list[Spec]] | None, job_type: str | None) -> _Response:
    """QueryJobResourceSpecs: ``by_type`` is None for an unknown project."""
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


def _label_selector(text: str) -> list[tuple[str, str]] | None:
    """The ``key=value`` terms of a labelSelector; None when any term has another form."""
    if not text:
        return []
    terms: list[tuple[str, str]] = []
    for term in text.split(","):
        key, equals, value = (part.strip() for part in term.partition("="))
        if not equals or not key or "=" in value or any(c in key for c in "!() "):
            return None
        terms.append((key, value))
    return terms


#: A pool's creation state (ListPools' ``status`` filter) by its phase: as the simulator
#: models it, a pool in Creating is being created, one in Error failed, the rest are created.
_CREATION_STATE = {"Creating": "creating", "Error": "failed"}


def _pools_answer(infos: Mapping[str, _PoolInfo] | None, params: Mapping[str, str]) -> _Response:
    """ListPools: ``infos`` is None for an unknown project; items sorted by name."""
    if infos is None:
        return _bad_request()
    selector = _label_selector(params.get("labelSelector", ""))
    if selector is None:
        return _bad_request(
            f"Invalid labelSelector {params['labelSelector']!r}: only comma-separated"
            " key=value terms are supported."
        )
    workspace = params.get("workspaceId") or "0"
    state = params.get("status") or None
    items = [
        info.item(name)
        for name, info in sorted(infos.items())
        if info.workspace_id == workspace
        and state in (None, _CREATION_STATE.get(info.phase, "created"))
        and all(info.labels().get(key) == value for key, value in selector)
    ]
    return _json(200, {"kind": "PoolList", "apiVersion": "v2", "metadata": {}, "items": items})


# --------------------------------------------------------------------------- errors


def _auth_error(reason: str) -> _Response:
    return _json(401, {"error_code": "APIGW.0301", "error_msg": _AUTH_PREFIX + reason})


def _bad_request(message: str = "Bad request.") -> _Response:
    return _json(400, {"error_code": "ModelArts.50004000", "error_msg": message})


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
