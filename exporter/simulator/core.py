"""The :class:`Simulator`: one lock, one state, and the pieces of the package wired together.

It keeps the data (pools' job counts and metadata, specs), the active faults, the latency
and the request log; asks :mod:`~exporter.simulator.verify` who may call; answers through
:mod:`~exporter.simulator.wire`, :mod:`~exporter.simulator.faults` and
:mod:`~exporter.simulator.control`; and serves it all with :mod:`~exporter.simulator.handler`.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from exporter import signing
from exporter.simulator.agency import Agency
from exporter.simulator.control import _control
from exporter.simulator.data import (
    SPEC_JOB_TYPES,
    WORKLOAD_TYPES,
    PoolCounts,
    RecordedRequest,
    SimulatorState,
    Spec,
    _demo_counts,
    _demo_pool_info,
    _drift_counts,
    _drift_nodes,
    _PoolInfo,
    _validate_counts,
    _validate_pool_info,
    _validate_specs,
    default_specs,
)
from exporter.simulator.faults import Fault, _ActiveFault, _answer_with, _take_fault
from exporter.simulator.handler import _Server
from exporter.simulator.verify import _AuthFailure, _Verifier
from exporter.simulator.wire import (
    _api_not_found,
    _auth_error,
    _bad_request,
    _pools_answer,
    _Request,
    _Response,
    _Route,
    _route,
    _specs_answer,
    _workloads_answer,
)

__all__ = ["Simulator"]


@dataclass
class _State:
    pools: dict[str, dict[str, PoolCounts]] = field(default_factory=dict)
    pool_info: dict[str, dict[str, _PoolInfo]] = field(default_factory=dict)  # same keys as pools
    specs: dict[str, dict[str, list[Spec]]] = field(default_factory=dict)
    faults: list[_ActiveFault] = field(default_factory=list)
    latency: float = 0.0
    requests: deque[RecordedRequest] = field(default_factory=deque)

    def ensure_project(self, project_id: str) -> None:
        self.pools.setdefault(project_id, {})
        self.pool_info.setdefault(project_id, {})
        self.specs.setdefault(project_id, {})


class Simulator:
    """ModelArts + IAM on loopback; thread-safe; see the :mod:`exporter.simulator` docstring.

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
        self._clock = clock
        self._host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._verifier = _Verifier(
            access_keys=access_keys or {},
            security_tokens=security_tokens or {},
            iam_users=iam_users or {},
            token_lifetime_seconds=token_lifetime_seconds,
            clock=clock,
            lock=self._lock,
        )
        self._state = _State(requests=deque(maxlen=max_recorded_requests))
        #: The instance metadata service (``GET /openstack/latest/securitykey``).
        self.agency = Agency(self._verifier, clock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Simulator:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        server = _Server((self._host, self._requested_port), self._respond)
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

    def set_access_keys(self, access_keys: Mapping[str, str]) -> None:
        """Accept these AK → SK pairs from now on, and only these: rotate the keys."""
        self._verifier.set_access_keys(access_keys)

    def set_pool(self, project_id: str, pool: str, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Set a pool's job counts: job type -> status key ("Running") -> count.

        A new pool gets the default metadata of :meth:`set_pool_info` (ListPools lists it).
        """
        validated = _validate_counts(counts)
        default_info = _validate_pool_info(pool, self._clock())
        with self._lock:
            self._state.ensure_project(project_id)
            self._state.pools[project_id][pool] = validated
            self._state.pool_info[project_id].setdefault(pool, default_info)

    def set_pool_info(
        self,
        project_id: str,
        pool: str,
        *,
        display_name: str | None = None,
        pool_type: str = "Dedicate",
        workspace_id: str = "0",
        phase: str = "Running",
        scope: Sequence[str] = ("Train", "Infer", "Notebook"),
        resources: Mapping[str, tuple[int, int]] | None = None,
        nodes: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """Set a pool's ListPools metadata; a new pool has no jobs (an empty statistics list).

        ``display_name`` (default: the pool name) is the ``os.modelarts/name`` label;
        ``resources`` maps flavor to (count, maxCount), default ``{"modelarts.vm.cpu.8u":
        (1, 1)}``; ``nodes`` maps a node state (creating, available, abnormal, deleting) to
        flavor -> node count, default every resource's count available. The phase is served
        as given (drift keeps Running/Abnormal in step with abnormal nodes). A pool keeps
        its creationTimestamp: the simulator clock when it first appeared.
        """
        info = _validate_pool_info(
            pool,
            self._clock(),
            display_name=display_name,
            pool_type=pool_type,
            workspace_id=workspace_id,
            phase=phase,
            scope=scope,
            resources=resources,
            nodes=nodes,
        )
        with self._lock:
            self._state.ensure_project(project_id)
            previous = self._state.pool_info[project_id].get(pool)
            if previous is not None:
                info.created = previous.created
            self._state.pool_info[project_id][pool] = info
            self._state.pools[project_id].setdefault(pool, {})

    def remove_pool(self, project_id: str, pool: str) -> bool:
        """Remove a pool's counts and metadata (workloads then answers 404 ModelArts.50015001,
        ListPools leaves it out); True if it existed."""
        with self._lock:
            self._state.pool_info.get(project_id, {}).pop(pool, None)
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
        """A deep copy of every project's pools (counts and ListPools items) and specs."""
        with self._lock:
            return SimulatorState(
                pools=copy.deepcopy(self._state.pools),
                specs=copy.deepcopy(self._state.specs),
                pool_info={
                    project_id: {name: info.item(name) for name, info in infos.items()}
                    for project_id, infos in self._state.pool_info.items()
                },
            )

    # ---------------------------------------------------------------- faults

    def inject(self, fault: Fault) -> None:
        """Add a fault after the existing ones (first match wins)."""
        with self._lock:
            self._state.faults.append(_ActiveFault(fault, fault.times))

    def clear_faults(self, fault: Fault | None = None) -> None:
        """Remove every fault, or only those equal to ``fault`` (one scenario's, while
        others go on)."""
        with self._lock:
            if fault is None:
                self._state.faults.clear()
            else:
                self._state.faults[:] = [a for a in self._state.faults if a.fault != fault]

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
        return self._verifier.is_locked(access_key)

    def failure_count(self, access_key: str) -> int:
        """Consecutive authentication failures of ``access_key`` since its last success."""
        return self._verifier.failure_count(access_key)

    # ---------------------------------------------------------------- demo

    def seed_demo(self, project_id: str, pools: Sequence[str], rng: random.Random) -> None:
        """Fill a realistic start: train/infer/notebook counts per pool, GPU and NPU pool
        metadata (Running, every node available), default specs."""
        for index, pool in enumerate(pools):
            self.set_pool(project_id, pool, {t: _demo_counts(t, rng) for t in WORKLOAD_TYPES})
            display_name, scope, resources = _demo_pool_info(index)
            self.set_pool_info(
                project_id, pool, display_name=display_name, scope=scope, resources=resources
            )
        for job_type in SPEC_JOB_TYPES:
            self.set_specs(project_id, job_type, default_specs(job_type))

    def drift(self, rng: random.Random) -> None:
        """Move jobs between statuses, add some, now and then flip a spec's no_resource, and
        now and then turn a pool's node abnormal or repair them (Running <-> Abnormal)."""
        with self._lock:
            for project_pools in self._state.pools.values():
                for counts in project_pools.values():
                    for statuses in counts.values():
                        _drift_counts(statuses, rng)
            for infos in self._state.pool_info.values():
                for info in infos.values():
                    _drift_nodes(info, rng)
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
            return _control(self, request)
        arrived = self._clock()
        route = _route(request.method, request.path)
        with self._lock:
            fault = _take_fault(self._state.faults, request.path, route.kind)
            delay = self._state.latency + (fault.latency if fault else 0.0)
        if delay > 0:
            time.sleep(delay)
        response = _answer_with(fault, lambda: self._serve(route, request))
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

    def _serve(self, route: _Route, request: _Request) -> _Response:
        if route.kind == "iam":
            return self._verifier.issue_token(request)
        if route.kind == "securitykey":
            return self.agency.answer(request.headers.get("x-metadata-token"))
        if route.kind == "metadata_token":
            return self.agency.session(request.headers.get("x-metadata-token-ttl-seconds"))
        if route.kind == "unknown":
            return _api_not_found()
        try:
            self._verifier.authenticate(request, route.project_id)
        except _AuthFailure as failure:
            return _auth_error(str(failure))
        if route.kind == "workloads":
            return self._workloads(route.project_id, route.name)
        if route.kind == "pools":
            return self._list_pools(route.project_id, request.query)
        return self._resource_specs(route.project_id, request.query)

    def _workloads(self, project_id: str, pool: str) -> _Response:
        with self._lock:
            if project_id not in self._state.pools:
                return _bad_request()
            counts = copy.deepcopy(self._state.pools[project_id].get(pool))
        return _workloads_answer(pool, counts)

    def _resource_specs(self, project_id: str, query: str) -> _Response:
        params = dict(signing.parse_query(query))
        job_type = params.get("job_type")
        with self._lock:
            by_type = copy.deepcopy(self._state.specs.get(project_id))
        return _specs_answer(by_type, job_type)

    def _list_pools(self, project_id: str, query: str) -> _Response:
        params = dict(signing.parse_query(query))
        with self._lock:
            infos = copy.deepcopy(self._state.pool_info.get(project_id))
        return _pools_answer(infos, params)
