"""A ModelArts + IAM look-alike on loopback, for tests and the ``demo`` command.

A real HTTP/1.1 server (stdlib ``ThreadingHTTPServer`` in a daemon thread, keep-alive, every
response JSON with ``Content-Length`` and an ``X-Request-Id``) that answers as the ModelArts
API Reference and ``docs/modelarts-api.md`` describe:

- ``GET /v2/{project_id}/statistics/pools/{pool}/workloads``: ShowWorkloadStatistics
  (unknown pool: 404 ``ModelArts.50015001``; unknown project: 400 ``ModelArts.50004000``);
- ``GET /v1/{project_id}/job/resource-specs[?job_type=train|inference]``: QueryJobResourceSpecs;
- ``GET /v2/{project_id}/pools[?labelSelector=&status=&workspaceId=]``: ListPools, no
  pagination, items sorted by name (``workspaceId`` defaults to ``"0"``; ``status`` matches the
  phase; ``labelSelector`` takes comma-separated ``key=value`` terms on the labels, any other
  form is a 400 ``ModelArts.50004000``; unknown project: 400 as for workloads);
- ``POST /v3/auth/tokens``: IAM password token (``X-Subject-Token``; wrong password: IAM 401);
- anything else: 404 ``APIGW.0101``; ``/_simulator/...``: control, no auth (see below).

The ModelArts APIs need ``X-Auth-Token`` (a token this simulator issued, unexpired, scoped
to the project) or an ``SDK-HMAC-SHA256`` signature, verified with :mod:`exporter.signing`
over the raw path and query exactly as received. The wire query must also already be the
canonical query (sorted, RFC 3986 encoded), as the exporter sends it. More than five
consecutive failures for one access key lock it for five minutes of the injected clock.

In-process use::

    from exporter.simulator import Fault, Simulator, default_specs

    with Simulator(access_keys={"AK": "SK"}, clock=fake_clock) as sim:
        sim.set_pool(PROJECT, "pool-a", {"train": {"Running": 3, "Completed": 10}})
        sim.set_specs(PROJECT, "train", default_specs("train"))
        sim.set_pool_info(                                       # ListPools metadata
            PROJECT, "pool-a", display_name="Prod A", phase="Abnormal",
            resources={"modelarts.vm.gpu.t4": (4, 8)},           # flavor: (count, maxCount)
            nodes={"available": {"modelarts.vm.gpu.t4": 3}, "abnormal": {"modelarts.vm.gpu.t4": 1}},
        )
        sim.inject(Fault.throttled(retry_after=2, times=1))      # next API call: 429
        sim.inject(Fault(path_contains="workloads", variant="statics"))
        sim.inject(Fault.server_error(503, api="pools"))         # ListPools only
        ...  # point the client at sim.url
        assert sim.requests()[0].status == 429
        expected = sim.snapshot_state().pools[PROJECT]["pool-a"]
        listed = sim.snapshot_state().pool_info[PROJECT]["pool-a"]  # the ListPools item

A pool set only with ``set_pool`` is listed with the default metadata (one
``modelarts.vm.cpu.8u`` node, available, Running, workspace ``"0"``); one set only with
``set_pool_info`` answers workloads with no jobs; ``remove_pool`` removes both. A fault's
``api`` (``"workloads"``, ``"specs"``, ``"pools"``, ``"iam"``) selects one API's requests.

More faults: ``Fault.server_error(503, times=2)``, ``Fault.unauthorized()``,
``Fault.disconnect()``, ``Fault.slow(1.5)``, ``Fault.malformed_json()``,
``Fault(variant="is_success_false")``, ``Fault(variant="oversized")``.

Out of process (``--port 0`` picks a free port; the URL is printed)::

    python -m exporter.simulator --port 18080 --project-id X --pools a,b --ak AK --sk SK
    curl -s localhost:18080/_simulator/state
    curl -X PUT  localhost:18080/_simulator/pools/X/a -d '{"train": {"Running": 2}}'
    curl -X PUT  localhost:18080/_simulator/pool-info/X/a -d '{"display_name": "Prod A",
      "resources": {"modelarts.vm.gpu.t4": {"count": 4, "maxCount": 8}},
      "nodes": {"available": {"modelarts.vm.gpu.t4": 4}}}'
    curl -X POST localhost:18080/_simulator/faults -d '{"status": 503, "times": 2}'
    curl -X POST localhost:18080/_simulator/faults -d '{"status": 503, "api": "pools"}'
    curl -X DELETE localhost:18080/_simulator/faults

Control endpoints: ``GET /_simulator/state``; ``PUT|DELETE /_simulator/pools/{project}/{pool}``;
``PUT /_simulator/pool-info/{project}/{pool}`` (``set_pool_info``'s keyword arguments as JSON,
``resources`` as ``{"flavor": {"count": n, "maxCount": m}}``, ``nodes`` as
``{"available": {"flavor": n}}``); ``PUT /_simulator/specs/{project}/{job_type}``;
``POST|DELETE /_simulator/faults``; ``PUT /_simulator/latency`` (``{"seconds": 0.5}``);
``GET|DELETE /_simulator/requests``. They are not recorded in the request log and are never
subject to faults.
"""

from __future__ import annotations

from exporter.simulator.cli import main
from exporter.simulator.core import Simulator
from exporter.simulator.data import (
    NODE_STATES,
    POOL_PHASES,
    POOL_TYPES,
    SPEC_FIELDS,
    SPEC_JOB_TYPES,
    STATUS_KEYS,
    WORKLOAD_TYPES,
    RecordedRequest,
    SimulatorState,
    default_specs,
)
from exporter.simulator.faults import FAULT_APIS, FAULT_VARIANTS, OVERSIZED_BYTES, Fault
from exporter.simulator.verify import LOCKOUT_SECONDS, LOCKOUT_THRESHOLD, SDK_DATE_TOLERANCE_SECONDS

__all__ = [
    "FAULT_APIS",
    "FAULT_VARIANTS",
    "LOCKOUT_SECONDS",
    "LOCKOUT_THRESHOLD",
    "NODE_STATES",
    "OVERSIZED_BYTES",
    "POOL_PHASES",
    "POOL_TYPES",
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
