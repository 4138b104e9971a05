"""The simulator's ListPools answers like ModelArts, over real loopback sockets.

The clock, simulator (``pool-a`` set with job counts only) and HTTP client fixtures, and the
signing helpers, are those of ``tests/unit/test_simulator.py``.
"""

from __future__ import annotations

import itertools
import random
import re
import subprocess
import sys
from collections.abc import Mapping
from typing import Any, TypedDict

import httpx
import pytest

from exporter import signing
from exporter.simulator import NODE_STATES, Fault, Simulator
from exporter.simulator.data import PoolItem
from tests.support.clocks import FakeClock
from tests.unit import test_simulator as base
from tests.unit.test_simulator import AK, PROJECT, WORKLOADS, error_code, iam_body, signed_get

clock, sim, client = base.clock, base.sim, base.client  # the shared fixtures

POOLS = f"/v2/{PROJECT}/pools"
T4, CPU = "modelarts.vm.gpu.t4", "modelarts.vm.cpu.8u"
CREATED = "2026-11-22T04:00:00Z"  # tests.unit.test_simulator.START


class PoolInfo(TypedDict, total=False):
    """Keyword arguments of ``Simulator.set_pool_info`` (those the tests share)."""

    display_name: str
    resources: Mapping[str, tuple[int, int]]
    nodes: Mapping[str, Mapping[str, int]]


PROD_A: PoolInfo = {
    "display_name": "Prod A",
    "resources": {T4: (4, 8)},
    "nodes": {"available": {T4: 3}, "abnormal": {T4: 1}},
}
PROD_A_ITEM = {
    "kind": "Pool",
    "apiVersion": "v2",
    "metadata": {
        "name": "pool-a",
        "creationTimestamp": CREATED,
        "labels": {"os.modelarts/name": "Prod A", "os.modelarts/workspace.id": "0"},
    },
    "spec": {
        "type": "Dedicate",
        "scope": ["Train", "Infer", "Notebook"],
        "resources": [{"flavor": T4, "count": 4, "maxCount": 8}],
    },
    "status": {
        "phase": "Running",
        "resources": {
            "creating": [],
            "available": [{"flavor": T4, "count": 3}],
            "abnormal": [{"flavor": T4, "count": 1}],
            "deleting": [],
        },
    },
}


def list_pools(
    client: httpx.Client,
    sim: Simulator,
    clock: FakeClock,
    *,
    path: str = POOLS,
    **params: str,
) -> httpx.Response:
    """ListPools signed with AK/SK, the query canonical as a client sends it."""
    return signed_get(client, sim, clock, path, signing.canonical_query(params.items()))


def listed(client: httpx.Client, sim: Simulator, clock: FakeClock, **params: str) -> list[str]:
    """The pool names a successful ListPools returns."""
    response = list_pools(client, sim, clock, **params)
    assert response.status_code == 200, response.text
    return [item["metadata"]["name"] for item in response.json()["items"]]


class TestListPools:
    def test_documented_shape(self, sim: Simulator, client: httpx.Client, clock: FakeClock) -> None:
        """A pool's metadata is served as the documented PoolList, node states in order."""
        sim.set_pool_info(PROJECT, "pool-a", **PROD_A)
        response = list_pools(client, sim, clock, labelSelector="", status="", workspaceId="")
        assert response.status_code == 200
        body = response.json()
        assert list(body) == ["kind", "apiVersion", "metadata", "items"]
        assert body == {
            "kind": "PoolList",
            "apiVersion": "v2",
            "metadata": {},
            "items": [PROD_A_ITEM],
        }
        assert list(body["items"][0]["status"]["resources"]) == list(NODE_STATES)

    def test_flavors_without_nodes_in_a_state_are_omitted(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A flavor with 0 nodes in a state is left out of that state's list."""
        nodes = {"available": {T4: 0, CPU: 2}, "deleting": {T4: 0}}
        sim.set_pool_info(PROJECT, "pool-a", resources={T4: (0, 4), CPU: (2, 2)}, nodes=nodes)
        [item] = list_pools(client, sim, clock).json()["items"]
        assert item["status"]["resources"]["available"] == [{"flavor": CPU, "count": 2}]
        assert item["status"]["resources"]["deleting"] == []
        assert [r["flavor"] for r in item["spec"]["resources"]] == [T4, CPU]

    def test_set_pool_only_pool_has_default_metadata(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A pool given only job counts is listed as one available cpu.8u node, Running."""
        [item] = list_pools(client, sim, clock).json()["items"]
        labels = {"os.modelarts/name": "pool-a", "os.modelarts/workspace.id": "0"}
        assert item["metadata"] == {
            "name": "pool-a",
            "creationTimestamp": CREATED,
            "labels": labels,
        }
        assert item["spec"] == {
            "type": "Dedicate",
            "scope": ["Train", "Infer", "Notebook"],
            "resources": [{"flavor": CPU, "count": 1, "maxCount": 1}],
        }
        nodes = {
            "creating": [],
            "available": [{"flavor": CPU, "count": 1}],
            "abnormal": [],
            "deleting": [],
        }
        assert item["status"] == {"phase": "Running", "resources": nodes}

    def test_state_carries_pool_info(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """snapshot_state and /_simulator/state hold each pool's item as ListPools serves it."""
        sim.set_pool_info(PROJECT, "pool-b", workspace_id="ws-1")
        served = list_pools(client, sim, clock).json()["items"]
        served += list_pools(client, sim, clock, workspaceId="ws-1").json()["items"]
        expected = {PROJECT: {item["metadata"]["name"]: item for item in served}}
        assert sim.snapshot_state().pool_info == expected
        assert client.get(sim.url + "/_simulator/state").json()["pool_info"] == expected

    def test_items_sorted_by_name(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """Items come sorted by pool name whatever the order they were added in."""
        for pool in ("pool-c", "pool-0", "pool-b"):
            sim.set_pool_info(PROJECT, pool)
        assert listed(client, sim, clock) == ["pool-0", "pool-a", "pool-b", "pool-c"]

    def test_workspace_defaults_to_zero(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """Without workspaceId (or with it empty) only workspace 0 is listed; else the one named."""
        sim.set_pool_info(PROJECT, "pool-b", workspace_id="ws-1")
        assert listed(client, sim, clock) == ["pool-a"]
        assert listed(client, sim, clock, workspaceId="") == ["pool-a"]
        assert listed(client, sim, clock, workspaceId="0") == ["pool-a"]
        assert listed(client, sim, clock, workspaceId="ws-1") == ["pool-b"]
        assert listed(client, sim, clock, workspaceId="ws-2") == []

    def test_status_filter(self, sim: Simulator, client: httpx.Client, clock: FakeClock) -> None:
        """status keeps the pools in that creation state only (a pool in Creating is being
        created, one in Error failed, the others are created); empty status keeps all."""
        sim.set_pool_info(PROJECT, "pool-b", phase="Creating")
        assert listed(client, sim, clock, status="creating") == ["pool-b"]
        assert listed(client, sim, clock, status="created") == ["pool-a"]
        assert listed(client, sim, clock, status="failed") == []
        assert listed(client, sim, clock, status="") == ["pool-a", "pool-b"]

    @pytest.mark.parametrize(
        ("selector", "expected"),
        [
            ("os.modelarts/name=Prod B", ["pool-b"]),
            ("os.modelarts/name=Prod B,os.modelarts/workspace.id=0", ["pool-b"]),
            (" os.modelarts/workspace.id = 0 ", ["pool-a", "pool-b"]),
            ("os.modelarts/name=Prod B,os.modelarts/workspace.id=1", []),
            ("os.modelarts/name=nope", []),
            ("team=x", []),
        ],
    )
    def test_label_selector_equality_terms(
        self,
        sim: Simulator,
        client: httpx.Client,
        clock: FakeClock,
        selector: str,
        expected: list[str],
    ) -> None:
        """labelSelector keeps the pools whose labels match every key=value term."""
        sim.set_pool_info(PROJECT, "pool-b", display_name="Prod B")
        assert listed(client, sim, clock, labelSelector=selector) == expected

    @pytest.mark.parametrize(
        "selector",
        [
            "os.modelarts/name!=x",
            "os.modelarts/name==x",
            "os.modelarts/name",
            "!os.modelarts/name",
            "env in (a,b)",
            "os.modelarts/name=x,",
        ],
    )
    def test_unsupported_label_selector_is_400(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock, selector: str
    ) -> None:
        """A labelSelector with anything but key=value terms gets a ModelArts 400 naming it."""
        response = list_pools(client, sim, clock, labelSelector=selector)
        assert response.status_code == 400
        assert error_code(response) == "ModelArts.50004000"
        assert selector in response.json()["error_msg"]

    def test_unknown_project_is_400(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """An unknown project answers 400 ModelArts.50004000, as workloads does."""
        response = list_pools(client, sim, clock, path=f"/v2/{'f' * 32}/pools")
        assert response.status_code == 400
        assert response.json() == {"error_code": "ModelArts.50004000", "error_msg": "Bad request."}

    def test_project_without_pools_lists_none(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A known project without pools answers an empty PoolList."""
        sim.add_project("f" * 32)
        assert listed(client, sim, clock, path=f"/v2/{'f' * 32}/pools") == []

    def test_credentials_are_required_and_failures_lock(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """Unsigned or badly signed ListPools get 401 APIGW.0301 and count towards the lockout."""
        unsigned = client.get(sim.url + POOLS)
        assert unsigned.status_code == 401
        assert error_code(unsigned) == "APIGW.0301"
        for _ in range(6):
            assert signed_get(client, sim, clock, POOLS, tamper=True).status_code == 401
        assert sim.is_locked(AK)
        assert list_pools(client, sim, clock).status_code == 401

    def test_iam_token_is_accepted(self, sim: Simulator, client: httpx.Client) -> None:
        """An X-Auth-Token scoped to the project works as for the other ModelArts APIs."""
        issued = client.post(sim.url + "/v3/auth/tokens", json=iam_body())
        headers = {"X-Auth-Token": issued.headers["x-subject-token"]}
        assert client.get(sim.url + POOLS, headers=headers).json()["kind"] == "PoolList"

    @pytest.mark.parametrize(
        ("sent", "signed"),
        [
            ("workspaceId=0&status=created", "status=created&workspaceId=0"),
            ("labelSelector=os.modelarts/name=a+b", "labelSelector=os.modelarts%2Fname%3Da%20b"),
        ],
    )
    def test_non_canonical_query_is_refused(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock, sent: str, signed: str
    ) -> None:
        """A query sent unsorted or encoded otherwise than the signed canonical one gets 401."""
        assert signed_get(client, sim, clock, POOLS, signed).status_code == 200
        response = signed_get(client, sim, clock, POOLS, sent, signed_query=signed)
        assert response.status_code == 401
        assert "canonical" in response.json()["error_msg"]


class TestPoolLifecycle:
    def test_info_only_pool_has_empty_workloads(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A pool set only with set_pool_info answers workloads with an empty item list."""
        sim.set_pool_info(PROJECT, "pool-b")
        path = f"/v2/{PROJECT}/statistics/pools/pool-b/workloads"
        response = signed_get(client, sim, clock, path)
        assert response.status_code == 200
        assert response.json() == {"statistics": {"total": 0, "items": []}}

    def test_remove_pool_removes_counts_and_metadata(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """After remove_pool, workloads answers 404 ModelArts.50015001 and ListPools omits it."""
        sim.set_pool_info(PROJECT, "pool-a", **PROD_A)
        assert sim.remove_pool(PROJECT, "pool-a")
        assert error_code(signed_get(client, sim, clock, WORKLOADS)) == "ModelArts.50015001"
        assert listed(client, sim, clock) == []
        assert sim.snapshot_state().pool_info[PROJECT] == {}

    def test_creation_timestamp_is_kept(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """A pool keeps the clock time it first appeared at; a later pool gets a later one."""
        clock.advance(3600)
        sim.set_pool_info(PROJECT, "pool-a", phase="Error")
        sim.set_pool(PROJECT, "pool-b", {})
        items = list_pools(client, sim, clock).json()["items"]
        stamps = {item["metadata"]["name"]: item["metadata"]["creationTimestamp"] for item in items}
        assert stamps == {"pool-a": CREATED, "pool-b": "2026-11-22T05:00:00Z"}

    def test_control_endpoint_round_trip(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """PUT /_simulator/pool-info takes set_pool_info's arguments as JSON and echoes the item."""
        body = {
            "display_name": "Prod A",
            "resources": {T4: {"count": 4, "maxCount": 8}},
            "nodes": {"available": {T4: 3}, "abnormal": {T4: 1}},
        }
        response = client.put(sim.url + f"/_simulator/pool-info/{PROJECT}/pool-a", json=body)
        assert response.status_code == 200
        assert response.json() == {"pool_info": {PROJECT: {"pool-a": PROD_A_ITEM}}}
        assert list_pools(client, sim, clock).json()["items"] == [PROD_A_ITEM]

    @pytest.mark.parametrize(
        "body",
        [
            {"colour": "red"},
            {"resources": {T4: [4, 8]}},
            {"resources": {T4: {"count": 4}}},
            {"nodes": {"broken": {T4: 1}}},
            {"phase": 3},
            [],
        ],
    )
    def test_control_endpoint_rejects_bad_bodies(
        self, sim: Simulator, client: httpx.Client, body: object
    ) -> None:
        """Unknown fields, wrong shapes and invalid values get 400 and change nothing."""
        response = client.put(sim.url + f"/_simulator/pool-info/{PROJECT}/pool-b", json=body)
        assert response.status_code == 400
        assert "error" in response.json()
        assert "pool-b" not in sim.snapshot_state().pool_info[PROJECT]

    @pytest.mark.parametrize(
        ("arguments", "error", "message"),
        [
            ({"nodes": {"broken": {T4: 1}}}, ValueError, "unknown node states"),
            ({"nodes": {"available": {T4: -1}}}, ValueError, "integer >= 0"),
            ({"nodes": {"available": {T4: True}}}, ValueError, "integer >= 0"),
            ({"nodes": {"available": [T4]}}, TypeError, "must map flavor to count"),
            ({"resources": {T4: (5, 2)}}, ValueError, "exceeds maxCount"),
            ({"resources": {T4: 3}}, TypeError, r"\(count, maxCount\) pair"),
            ({"resources": {T4: (1.5, 2)}}, ValueError, "count must be an integer"),
            ({"resources": [T4]}, TypeError, "resources must map"),
            ({"scope": "Train"}, TypeError, "scope must be a list"),
            ({"scope": ["Train", 1]}, TypeError, "scope entry"),
            ({"phase": ""}, TypeError, "phase must be a non-empty string"),
            ({"display_name": 3}, TypeError, "display_name"),
        ],
    )
    def test_set_pool_info_validates(
        self, sim: Simulator, arguments: dict[str, Any], error: type[Exception], message: str
    ) -> None:
        """Bad metadata raises a TypeError or ValueError naming the problem and stores nothing."""
        # Any: most of these arguments break set_pool_info's types on purpose.
        with pytest.raises(error, match=message):
            sim.set_pool_info(PROJECT, "pool-b", **arguments)
        assert "pool-b" not in sim.snapshot_state().pools[PROJECT]


class TestPoolFaults:
    @pytest.mark.parametrize(
        ("fault", "workloads", "pools"),
        [
            (Fault.server_error(503, api="pools"), 200, 503),
            (Fault(status=503, api="workloads"), 503, 200),
            (Fault.server_error(503, path_contains="pools"), 503, 503),
        ],
        ids=["api-pools", "api-workloads", "path-contains-pools"],
    )
    def test_api_selects_one_api(
        self,
        sim: Simulator,
        client: httpx.Client,
        clock: FakeClock,
        fault: Fault,
        workloads: int,
        pools: int,
    ) -> None:
        """A fault's api hits only that API, where path_contains="pools" would hit both."""
        sim.inject(fault)
        assert signed_get(client, sim, clock, WORKLOADS).status_code == workloads
        assert list_pools(client, sim, clock).status_code == pools

    def test_api_fault_over_control_and_oversized(
        self, sim: Simulator, client: httpx.Client, clock: FakeClock
    ) -> None:
        """api survives the control JSON, and oversized pads a still-valid PoolList."""
        fault = {"api": "pools", "variant": "oversized", "times": 1}
        assert client.post(sim.url + "/_simulator/faults", json=fault).json()["api"] == "pools"
        assert "statistics" in signed_get(client, sim, clock, WORKLOADS).json()
        response = list_pools(client, sim, clock)
        assert len(response.content) > 1024 * 1024
        assert response.json()["kind"] == "PoolList"

    def test_fault_api_is_checked(self) -> None:
        """An unknown api, or a variant that never applies to the api, is refused."""
        with pytest.raises(ValueError, match="unknown fault api"):
            Fault(api="nope")
        with pytest.raises(ValueError, match="never applies"):
            Fault(api="pools", variant="statics")
        fault = Fault.throttled(1, api="pools")
        assert Fault.from_json(fault.to_json()) == fault


def member(item: PoolItem, name: str) -> dict[str, Any]:
    """A ListPools item's JSON object ``name`` (metadata, spec or status)."""
    found = item[name]
    assert isinstance(found, dict), item
    return found


def pool_nodes(sim: Simulator) -> dict[str, tuple[str, dict[str, int]]]:
    """Each pool's phase and node count per state, checking Running/Abnormal match the nodes."""
    seen: dict[str, tuple[str, dict[str, int]]] = {}
    for name, item in sim.snapshot_state().pool_info[PROJECT].items():
        status = member(item, "status")
        nodes = {s: sum(e["count"] for e in status["resources"][s]) for s in NODE_STATES}
        if status["phase"] in ("Running", "Abnormal"):
            assert (status["phase"] == "Abnormal") == (nodes["abnormal"] > 0), item
        seen[name] = (status["phase"], nodes)
    return seen


class TestPoolDemo:
    def test_seed_demo_sets_gpu_and_npu_pools(self) -> None:
        """seed_demo names pools by role and accelerator, all Running with every node available."""
        simulator = Simulator()
        simulator.seed_demo(PROJECT, [f"p{i}" for i in range(5)], random.Random(1))
        items = simulator.snapshot_state().pool_info[PROJECT].values()
        assert [member(item, "metadata")["labels"]["os.modelarts/name"] for item in items] == [
            "Training (GPU)",
            "Inference (NPU)",
            "Notebooks (GPU)",
            "Training (NPU)",
            "Training (GPU) 2",
        ]
        flavors = {r["flavor"] for item in items for r in member(item, "spec")["resources"]}
        assert any(".gpu." in f for f in flavors)
        assert any(".npu." in f for f in flavors)
        for phase, nodes in pool_nodes(simulator).values():
            assert phase == "Running"
            assert nodes["available"] > 0
            assert nodes["abnormal"] == 0

    def test_drift_keeps_phase_in_step_with_abnormal_nodes(self) -> None:
        """Drift turns nodes abnormal and back, Abnormal exactly then; other phases stay put."""
        simulator = Simulator()
        rng = random.Random(5)
        simulator.seed_demo(PROJECT, ["train", "infer", "notebooks"], rng)
        simulator.set_pool_info(PROJECT, "creating", phase="Creating", nodes={"creating": {CPU: 1}})
        simulator.set_pool_info(PROJECT, "broken", phase="Error")
        start = {name: sum(nodes.values()) for name, (_, nodes) in pool_nodes(simulator).items()}
        phases: dict[str, list[str]] = {name: [] for name in start}
        for _ in range(400):
            simulator.drift(rng)
            for name, (phase, nodes) in pool_nodes(simulator).items():
                phases[name].append(phase)
                assert sum(nodes.values()) == start[name]
        assert set(phases["creating"]) == {"Creating"}
        assert set(phases["broken"]) == {"Error"}
        runs = [phases[name] for name in ("train", "infer", "notebooks")]
        transitions = {pair for run in runs for pair in itertools.pairwise(run)}
        assert {("Running", "Abnormal"), ("Abnormal", "Running")} <= transitions


@pytest.mark.e2e
def test_cli_seeds_pool_metadata() -> None:
    """python -m exporter.simulator serves ListPools metadata for the pools it seeds."""
    command = [sys.executable, "-m", "exporter.simulator", "--port", "0", "--pools", "a,b"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            match = re.search(r"listening on (http://\S+)", process.stdout.readline())
            assert match, "the simulator did not print its URL"
            state = httpx.get(match[1] + "/_simulator/state", timeout=5).json()
        finally:
            process.kill()
    [pools] = state["pool_info"].values()
    labels = {pool: item["metadata"]["labels"]["os.modelarts/name"] for pool, item in pools.items()}
    assert labels == {"a": "Training (GPU)", "b": "Inference (NPU)"}
