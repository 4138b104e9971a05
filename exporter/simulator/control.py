"""The ``/_simulator/...`` control endpoints: set data and faults, read state and the log.

``GET /_simulator/state``; ``PUT|DELETE /_simulator/pools/{project}/{pool}``;
``PUT /_simulator/pool-info/{project}/{pool}`` (the keyword arguments of ``set_pool_info``,
``resources`` as ``{"flavor": {"count": n, "maxCount": m}}``, ``nodes`` as
``{"available": {"flavor": n}}``); ``PUT /_simulator/specs/{project}/{job_type}``;
``POST|DELETE /_simulator/faults``; ``PUT /_simulator/latency`` (``{"seconds": 0.5}``);
``GET|DELETE /_simulator/requests``. Each one calls the public method of the same job on
the simulator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, Protocol
from urllib.parse import unquote

from exporter.simulator.data import (
    RecordedRequest,
    SimulatorState,
    _validate_counts,
    _validate_specs,
)
from exporter.simulator.faults import Fault
from exporter.simulator.wire import _dig, _json, _Request, _Response

__all__: list[str] = []


class _Controlled(Protocol):
    """What the control endpoints drive: the public methods of :class:`Simulator`."""

    def snapshot_state(self) -> SimulatorState: ...

    def set_pool(
        self, project_id: str, pool: str, counts: Mapping[str, Mapping[str, int]]
    ) -> None: ...

    def set_pool_info(
        self,
        project_id: str,
        pool: str,
        *,
        display_name: str | None = ...,
        pool_type: str = ...,
        workspace_id: str = ...,
        phase: str = ...,
        scope: Sequence[str] = ...,
        resources: Mapping[str, tuple[int, int]] | None = ...,
        nodes: Mapping[str, Mapping[str, int]] | None = ...,
    ) -> None: ...

    def remove_pool(self, project_id: str, pool: str) -> bool: ...

    def set_specs(
        self, project_id: str, job_type: str, specs: Sequence[Mapping[str, object]]
    ) -> None: ...

    def inject(self, fault: Fault) -> None: ...

    def clear_faults(self, fault: Fault | None = None) -> None: ...

    def set_latency(self, seconds: float) -> None: ...

    def requests(self) -> list[RecordedRequest]: ...

    def clear_requests(self) -> None: ...


def _control(simulator: _Controlled, request: _Request) -> _Response:
    parts = [unquote(p) for p in request.path.split("/")[2:]]
    method = request.method
    try:
        payload: object = json.loads(request.body) if request.body else None
    except ValueError:
        return _json(400, {"error": "body is not JSON"})
    try:
        return _control_action(simulator, method, parts, payload)
    except (TypeError, ValueError) as exc:
        return _json(400, {"error": str(exc)})


def _control_action(
    simulator: _Controlled, method: str, parts: list[str], payload: object
) -> _Response:
    match (method, parts):
        case ("GET", ["state"]):
            return _json(200, simulator.snapshot_state().to_json())
        case ("PUT", ["pools", project_id, pool]):
            simulator.set_pool(project_id, pool, _validate_counts(payload))
            return _json(200, {"pools": {project_id: {pool: payload}}})
        case ("PUT", ["pool-info", project_id, pool]):
            simulator.set_pool_info(project_id, pool, **_pool_info_arguments(payload))
            item = simulator.snapshot_state().pool_info[project_id][pool]
            return _json(200, {"pool_info": {project_id: {pool: item}}})
        case ("DELETE", ["pools", project_id, pool]):
            return _json(200, {"removed": simulator.remove_pool(project_id, pool)})
        case ("PUT", ["specs", project_id, job_type]):
            simulator.set_specs(project_id, job_type, _validate_specs(payload))
            return _json(200, {"specs": {project_id: {job_type: payload}}})
        case ("POST", ["faults"]):
            fault = Fault.from_json(payload)
            simulator.inject(fault)
            return _json(201, fault.to_json())
        case ("DELETE", ["faults"]):
            simulator.clear_faults()
            return _json(200, {"faults": []})
        case ("PUT", ["latency"]):
            seconds = _dig(payload, "seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise TypeError('body must be {"seconds": <number>}')
            simulator.set_latency(float(seconds))
            return _json(200, {"seconds": float(seconds)})
        case ("GET", ["requests"]):
            return _json(200, {"requests": [asdict(r) for r in simulator.requests()]})
        case ("DELETE", ["requests"]):
            simulator.clear_requests()
            return _json(200, {"requests": []})
    return _json(404, {"error": f"no control endpoint {method} /_simulator/{'/'.join(parts)}"})


_POOL_INFO_ARGUMENTS = frozenset(
    {"display_name", "pool_type", "workspace_id", "phase", "scope", "resources", "nodes"}
)


def _pool_info_arguments(payload: object) -> dict[str, Any]:
    """``set_pool_info`` keyword arguments from a control body; the method checks the values."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise TypeError("pool info must be a JSON object of set_pool_info arguments")
    unknown = set(payload) - _POOL_INFO_ARGUMENTS
    if unknown:
        raise ValueError(f"unknown pool info fields: {sorted(unknown)}")
    arguments = dict(payload)
    resources = arguments.get("resources")
    if resources is not None:
        if not isinstance(resources, dict):
            raise TypeError('resources must map flavor to {"count": n, "maxCount": m}')
        pairs: dict[str, tuple[object, object]] = {}
        for flavor, entry in resources.items():
            if not isinstance(entry, dict) or set(entry) != {"count", "maxCount"}:
                raise TypeError(f'resources[{flavor!r}] must be {{"count": n, "maxCount": m}}')
            pairs[flavor] = (entry["count"], entry["maxCount"])
        arguments["resources"] = pairs
    return arguments
