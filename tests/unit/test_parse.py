"""Response bodies → models (``exporter.parse``).

Expected values are written by hand from the API Reference pages and notes listed in
``docs/modelarts-api.md`` (ShowWorkloadStatistics, job resource specifications, ListPools).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import parse
from exporter.errors import ApiError, PollError, ResponseError
from exporter.models import (
    NODE_STATES,
    JobTypeStatistics,
    Pool,
    PoolFlavor,
    PoolList,
    ResourceSpecs,
    WorkloadStatistics,
)
from exporter.parse import (
    error_fields,
    load_json,
    parse_pool_list,
    parse_resource_specs,
    parse_workload_statistics,
    zero_filled,
)
from tests.support.samples import (
    CPU_SPEC,
    DOCUMENTED_STATUSES,
    GPU_SPEC,
    SPECS_FAILED_SAMPLE,
    SPECS_SAMPLE,
)

# ShowWorkloadStatistics, shaped as Tables 2-5 document it (every status key of Table 5).
WORKLOAD_BODY = b"""{
  "statistics": {
    "total": 2,
    "items": [
      {
        "type": "train",
        "total": 6,
        "status": {
          "Queue": 1, "Pending": 0, "Abnormal": 0, "Terminating": 0, "Creating": 0,
          "Running": 3, "Completed": 2, "Terminated": 0, "Failed": 0
        }
      },
      {
        "type": "notebook",
        "total": 1,
        "status": {"Running": 1, "Failed": 0}
      }
    ]
  }
}"""

HUGE_INT_TEXT = "1" + "0" * 399


def workload(items: list[Any], key: str = "statistics") -> dict[str, Any]:
    """A ShowWorkloadStatistics body holding ``items``."""
    return {key: {"total": len(items), "items": items}}


def train_item(status: dict[str, Any], total: Any = 1) -> dict[str, Any]:
    return {"type": "train", "total": total, "status": status}


DROP: Any = object()


def spec(**fields: Any) -> dict[str, Any]:
    """A specs[] entry: the sample's CPU spec with ``fields`` replaced (``DROP`` removes one)."""
    base: dict[str, Any] = json.loads(SPECS_SAMPLE)["specs"][0]
    for name, value in fields.items():
        if value is DROP:
            del base[name]
        else:
            base[name] = value
    return base


# ListPools, shaped as docs/modelarts-api.md has it: a Dedicate pool with two flavors (its t4
# nodes listed twice under "available", to be summed) and a Logical pool still creating.
T4, CPU8 = "modelarts.vm.gpu.t4", "modelarts.vm.cpu.8u"
POOL_LIST_BODY = b"""{
  "kind": "PoolList",
  "apiVersion": "v2",
  "metadata": {},
  "items": [
    {
      "metadata": {
        "name": "pool-7f3a2b1c",
        "labels": {"os.modelarts/name": "Prod A", "os.modelarts/workspace.id": "0"}
      },
      "spec": {
        "type": "Dedicate",
        "scope": ["Train", "Infer"],
        "resources": [
          {"flavor": "modelarts.vm.gpu.t4", "count": 4, "maxCount": 8},
          {"flavor": "modelarts.vm.cpu.8u", "count": 1, "maxCount": 1}
        ]
      },
      "status": {
        "phase": "Running",
        "resources": {
          "creating": [],
          "available": [
            {"flavor": "modelarts.vm.gpu.t4", "count": 2},
            {"flavor": "modelarts.vm.cpu.8u", "count": 1},
            {"flavor": "modelarts.vm.gpu.t4", "count": 1}
          ],
          "abnormal": [{"flavor": "modelarts.vm.gpu.t4", "count": 1}],
          "deleting": []
        }
      }
    },
    {
      "metadata": {
        "name": "pool-logical",
        "labels": {"os.modelarts/name": "Shared", "os.modelarts/workspace.id": "ws-1"}
      },
      "spec": {
        "type": "Logical",
        "scope": ["Train"],
        "resources": [{"flavor": "modelarts.vm.cpu.8u", "count": 2, "maxCount": 4}]
      },
      "status": {
        "phase": "Creating",
        "resources": {
          "creating": [{"flavor": "modelarts.vm.cpu.8u", "count": 2}],
          "available": [],
          "abnormal": [],
          "deleting": []
        }
      }
    }
  ]
}"""


def pool_list(*items: Any) -> dict[str, Any]:
    """A ListPools body holding ``items``."""
    return {"kind": "PoolList", "items": list(items)}


def pool_item(name: Any = "pool-a", **nodes: Any) -> dict[str, Any]:
    """A ListPools item with only ``metadata.name`` and, per node state, ``nodes`` entries."""
    return {"metadata": {"name": name}, "status": {"resources": nodes}}


def node_counts(pool: Pool) -> dict[tuple[str, str], float]:
    """A pool's nodes as (flavor, state) -> count, whatever their order."""
    counts = {(flavor, state): count for flavor, state, count in pool.nodes}
    assert len(counts) == len(pool.nodes), "a (flavor, state) pair is listed twice"
    return counts


def assert_parse_invalid(parser: Callable[[Any], object], body: object, path: str) -> None:
    """``parser(body)`` raises an ``invalid_response`` whose message starts with the JSON
    ``path``."""
    with pytest.raises(ResponseError) as info:
        parser(body)
    error = info.value
    assert type(error) is ResponseError
    assert error.local_code == "invalid_response"
    assert error.code == "invalid_response"
    assert error.detail.message.startswith(f"{path}: "), error.detail.message


class TestZeroFilled:
    """What the client serves of ShowWorkloadStatistics: the parsed answer, zero-filled."""

    def test_every_documented_status_of_a_reported_type(self) -> None:
        """A status the API left out is 0: all nine documented ones, in their documented
        order, so that a first failure is a rise from 0, never the birth of a series at 1."""
        body = workload([{"type": "notebook", "total": 2, "status": {"Running": 2}}])
        filled = zero_filled(parse_workload_statistics(body))
        notebook = next(t for t in filled.job_types if t.job_type == "notebook")
        assert notebook.statuses == tuple(
            (status, 2.0 if status == "running" else 0.0) for status in DOCUMENTED_STATUSES
        )
        assert notebook.total == 2.0

    def test_every_documented_type_once_the_pool_answered(self) -> None:
        """train, infer and notebook are all there, in that order; a type the pool left out
        has every status at 0 and a total of 0. A pool without any jobs is no exception."""
        body = workload([{"type": "notebook", "total": 2, "status": {"Running": 2}}])
        filled = zero_filled(parse_workload_statistics(body))
        assert [t.job_type for t in filled.job_types] == ["train", "infer", "notebook"]
        infer = filled.job_types[1]
        assert (infer.total, infer.statuses) == (
            0.0,
            tuple((status, 0.0) for status in DOCUMENTED_STATUSES),
        )
        empty = zero_filled(parse_workload_statistics({"statistics": {"items": []}}))
        assert [t.job_type for t in empty.job_types] == ["train", "infer", "notebook"]

    def test_unknown_types_and_statuses_pass_through_after_the_documented_ones(self) -> None:
        """A job type or status the documentation does not name is kept as it came, after
        the documented ones; a missing total stays unknown (None), not 0."""
        body = workload(
            [
                {"type": "batch", "total": 2, "status": {"Suspended": 2}},
                {"type": "train", "status": {"Suspended": 1, "Running": 0}},
            ]
        )
        filled = zero_filled(parse_workload_statistics(body))
        assert [t.job_type for t in filled.job_types] == ["train", "infer", "notebook", "batch"]
        train, batch = filled.job_types[0], filled.job_types[3]
        assert [s for s, _ in train.statuses] == [*DOCUMENTED_STATUSES, "suspended"]
        assert train.total is None
        assert batch.statuses[-1] == ("suspended", 2.0)
        assert [s for s, _ in batch.statuses] == [*DOCUMENTED_STATUSES, "suspended"]

    def test_a_full_answer_is_unchanged(self) -> None:
        """An answer with every documented type and status, in order, comes out equal."""
        body = workload(
            [
                {"type": t, "total": 9, "status": {s.capitalize(): 1 for s in DOCUMENTED_STATUSES}}
                for t in ("train", "infer", "notebook")
            ]
        )
        parsed = parse_workload_statistics(body)
        assert zero_filled(parsed) == parsed


class TestWorkloadStatistics:
    def test_documented_shape(self) -> None:
        """The documented body gives one entry per item, statuses lower-cased in order, 0 kept."""
        result = parse_workload_statistics(load_json(WORKLOAD_BODY))
        assert result == WorkloadStatistics(
            job_types=(
                JobTypeStatistics(
                    job_type="train",
                    total=6.0,
                    statuses=(
                        ("queue", 1.0),
                        ("pending", 0.0),
                        ("abnormal", 0.0),
                        ("terminating", 0.0),
                        ("creating", 0.0),
                        ("running", 3.0),
                        ("completed", 2.0),
                        ("terminated", 0.0),
                        ("failed", 0.0),
                    ),
                ),
                JobTypeStatistics(
                    job_type="notebook",
                    total=1.0,
                    statuses=(("running", 1.0), ("failed", 0.0)),
                ),
            )
        )

    def test_statics_variant_with_string_counts(self) -> None:
        """The ``statics`` edition with counts as strings parses like the documented one."""
        body = {
            "statics": {
                "total": "1",
                "items": [
                    {"type": "infer", "total": "4", "status": {"Running": "3", "Pending": "1"}}
                ],
            }
        }
        assert parse_workload_statistics(body) == WorkloadStatistics(
            job_types=(
                JobTypeStatistics(
                    job_type="infer", total=4.0, statuses=(("running", 3.0), ("pending", 1.0))
                ),
            )
        )

    def test_statistics_preferred_over_statics(self) -> None:
        """When both top-level keys are present, ``statistics`` is the one read."""
        body = {
            "statistics": {"items": [train_item({"Running": 1})]},
            "statics": {"items": [train_item({"Running": 9})]},
        }
        result = parse_workload_statistics(body)
        assert result.job_types[0].statuses == (("running", 1.0),)

    def test_unknown_type_and_status_pass_through(self) -> None:
        """An undocumented job type and status key are kept, the key lower-cased."""
        body = workload([{"type": "batch", "total": 2, "status": {"Suspended": 2}}])
        assert parse_workload_statistics(body) == WorkloadStatistics(
            job_types=(
                JobTypeStatistics(job_type="batch", total=2.0, statuses=(("suspended", 2.0),)),
            )
        )

    def test_missing_total_is_none(self) -> None:
        """An item without ``total`` has total None, not zero."""
        body = workload([{"type": "train", "status": {"Running": 1}}])
        assert parse_workload_statistics(body).job_types[0].total is None

    def test_missing_status_is_empty(self) -> None:
        """An item without ``status`` has no status counts."""
        body = workload([{"type": "train", "total": 0}])
        assert parse_workload_statistics(body).job_types[0].statuses == ()

    def test_empty_items(self) -> None:
        """A pool without jobs of any type yields no job types."""
        assert parse_workload_statistics({"statistics": {"total": 0, "items": []}}) == (
            WorkloadStatistics(job_types=())
        )

    def test_duplicate_job_type_keeps_first(self) -> None:
        """A job type listed twice keeps its first entry only."""
        body = workload(
            [
                {"type": "train", "total": 1, "status": {"Running": 1}},
                {"type": "infer", "total": 5, "status": {}},
                {"type": "train", "total": 7, "status": {"Running": 7}},
            ]
        )
        result = parse_workload_statistics(body)
        assert result.job_types == (
            JobTypeStatistics(job_type="train", total=1.0, statuses=(("running", 1.0),)),
            JobTypeStatistics(job_type="infer", total=5.0, statuses=()),
        )

    def test_case_duplicate_status_keeps_first(self) -> None:
        """Status keys equal after lower-casing keep the first count."""
        body = workload([train_item({"Running": 1, "Failed": 4, "RUNNING": 2, "running": 3})])
        result = parse_workload_statistics(body)
        assert result.job_types[0].statuses == (("running", 1.0), ("failed", 4.0))

    def test_huge_count_is_invalid_not_a_crash(self) -> None:
        """A count too large for a float is an invalid response naming its path."""
        raw = '{"statistics": {"items": [{"type": "train", "status": {"Running": %s}}]}}'
        assert_parse_invalid(
            parse_workload_statistics,
            load_json((raw % HUGE_INT_TEXT).encode()),
            "$.statistics.items[0].status.Running",
        )

    @pytest.mark.parametrize(
        ("body", "path"),
        [
            pytest.param([], "$", id="top-level-array"),
            pytest.param("statistics", "$", id="top-level-string"),
            pytest.param(None, "$", id="top-level-null"),
            pytest.param({}, "$.statistics", id="missing-statistics"),
            pytest.param({"statistics": None}, "$.statistics", id="null-statistics"),
            pytest.param({"statistics": []}, "$.statistics", id="statistics-array"),
            pytest.param({"statics": 3}, "$.statics", id="statics-number"),
            pytest.param({"statistics": {"items": {}}}, "$.statistics.items", id="items-object"),
            pytest.param({"statistics": {"items": None}}, "$.statistics.items", id="items-null"),
            pytest.param({"statics": {"items": "x"}}, "$.statics.items", id="statics-items-str"),
            pytest.param(
                workload([train_item({}), "train"]), "$.statistics.items[1]", id="item-string"
            ),
            pytest.param(
                workload([{"total": 1, "status": {}}]),
                "$.statistics.items[0].type",
                id="missing-type",
            ),
            pytest.param(
                workload([{"type": "", "status": {}}]),
                "$.statistics.items[0].type",
                id="empty-type",
            ),
            pytest.param(
                workload([{"type": 3, "status": {}}]),
                "$.statistics.items[0].type",
                id="numeric-type",
            ),
            pytest.param(
                workload([{"type": "train", "status": [1, 2]}]),
                "$.statistics.items[0].status",
                id="status-array",
            ),
            pytest.param(
                workload([train_item({}, total=-1)]),
                "$.statistics.items[0].total",
                id="negative-total",
            ),
            pytest.param(
                workload([train_item({}, total="lots")]),
                "$.statistics.items[0].total",
                id="word-total",
            ),
        ],
    )
    def test_malformed_structure(self, body: object, path: str) -> None:
        """A body that is not shaped as documented raises invalid_response naming the path."""
        assert_parse_invalid(parse_workload_statistics, body, path)

    @pytest.mark.parametrize(
        "count",
        [
            pytest.param(-1, id="negative"),
            pytest.param("-2", id="negative-string"),
            pytest.param(None, id="null"),
            pytest.param({"n": 1}, id="object"),
            pytest.param([1], id="array"),
            pytest.param(True, id="true"),
            pytest.param(False, id="false"),
            pytest.param("NaN", id="nan-string"),
            pytest.param("inf", id="inf-string"),
            pytest.param("-Infinity", id="minus-infinity-string"),
            pytest.param(float("nan"), id="nan-number"),
            pytest.param(float("inf"), id="inf-number"),
            pytest.param("three", id="word"),
            pytest.param("", id="empty-string"),
        ],
    )
    def test_bad_count(self, count: object) -> None:
        """A status count that is not a non-negative finite number names its exact path."""
        body = workload([train_item({"Pending": 0}), train_item({"Pending": 1, "Running": count})])
        # The second item is a duplicate type, yet it is still validated.
        assert_parse_invalid(
            parse_workload_statistics, body, "$.statistics.items[1].status.Running"
        )


class TestResourceSpecs:
    def test_seed_sample(self) -> None:
        """The documented successful sample gives its two specs with every field as documented."""
        result = parse_resource_specs(load_json(SPECS_SAMPLE))
        assert result == ResourceSpecs(total_count=2.0, specs=(CPU_SPEC, GPU_SPEC))

    def test_seed_failed_sample(self) -> None:
        """The failed sample (``error_message``) raises ApiError with HTTP 200 and code."""
        with pytest.raises(ApiError) as info:
            parse_resource_specs(load_json(SPECS_FAILED_SAMPLE))
        error = info.value
        assert type(error) is ApiError
        assert error.detail.http_status == 200
        assert error.detail.error_code == "ModelArts.0105"
        assert error.code == "ModelArts.0105"
        assert error.detail.message == "Error string"
        assert not error.retryable

    def test_failed_with_error_msg(self) -> None:
        """The ``error_msg`` edition of the failure body gives the same ApiError."""
        body = {"is_success": False, "error_msg": "Error string", "error_code": "ModelArts.0105"}
        with pytest.raises(ApiError) as info:
            parse_resource_specs(body)
        assert info.value.detail.http_status == 200
        assert info.value.detail.error_code == "ModelArts.0105"
        assert info.value.detail.message == "Error string"

    def test_failed_without_code(self) -> None:
        """A failure body without a code still raises ApiError, with the generic code."""
        with pytest.raises(ApiError) as info:
            parse_resource_specs({"is_success": False})
        assert info.value.detail.error_code is None
        assert info.value.code == "http_error"
        assert info.value.detail.http_status == 200

    @pytest.mark.parametrize("flag", ["false", "FALSE"])
    def test_failed_as_a_string(self, flag: str) -> None:
        """``is_success`` as the string "false", in any case, is a failure like the boolean:
        flags are read like ``no_resource``. The specs beside it are not read."""
        with pytest.raises(ApiError) as info:
            parse_resource_specs({"is_success": flag, "specs": float("nan")})
        assert info.value.detail.http_status == 200

    def test_non_numeric_fields_are_skipped(self) -> None:
        """Numeric fields that are not numbers become None without failing the response."""
        body = {
            "specs": [
                spec(gpu_num="many", max_num=None, unit_num={}, core=[2], cpu=True),
                spec(spec_code="modelarts.vm.cpu.4u", core="NaN", cpu="1e999", max_num="3"),
            ]
        }
        first, second = parse_resource_specs(body).specs
        assert (first.gpus, first.max_nodes, first.pricing_units) == (None, None, None)
        assert (first.cpu_cores, first.memory_gib) == (None, None)
        assert first.spec_code == "modelarts.vm.cpu.2u"
        assert (second.cpu_cores, second.memory_gib, second.max_nodes) == (None, None, 3.0)
        assert second.gpus == 0.0

    def test_huge_number_is_skipped(self) -> None:
        """A numeric field too large for a float is skipped rather than crashing the parse."""
        raw = '{"spec_total_count": %s, "specs": [{"spec_code": "a.b", "gpu_num": %s}]}'
        result = parse_resource_specs(load_json((raw % (HUGE_INT_TEXT, HUGE_INT_TEXT)).encode()))
        assert result.total_count is None
        assert result.specs[0].gpus is None

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (True, True),
            (False, False),
            ("true", True),
            ("FALSE", False),
            ("yes", None),
            (1, None),
            (0, None),
            ({}, None),
        ],
    )
    def test_no_resource(self, value: object, expected: bool | None) -> None:
        """``no_resource`` is a bool, a "true"/"false" string, or else None."""
        result = parse_resource_specs({"specs": [spec(no_resource=value)]})
        assert result.specs[0].no_resource is expected

    def test_missing_no_resource_is_none(self) -> None:
        """A spec without ``no_resource`` reports None, not False."""
        result = parse_resource_specs({"specs": [spec(no_resource=DROP)]})
        assert result.specs[0].no_resource is None

    def test_missing_labels_are_empty(self) -> None:
        """Missing label fields become empty strings."""
        result = parse_resource_specs(
            {"specs": [spec(spec_id=DROP, gpu_type=DROP, storage=DROP, interface_type=DROP)]}
        )
        only = result.specs[0]
        assert (only.spec_id, only.gpu_type, only.storage, only.interface_type) == ("", "", "", "")

    def test_label_numbers_without_fraction(self) -> None:
        """Numeric label fields print as whole numbers when they are whole."""
        result = parse_resource_specs({"specs": [spec(spec_id=7.0, interface_type="2")]})
        assert (result.specs[0].spec_id, result.specs[0].interface_type) == ("7", "2")

    @pytest.mark.parametrize(
        "bad",
        [
            pytest.param(DROP, id="missing"),
            pytest.param(None, id="null"),
            pytest.param("", id="empty"),
            pytest.param(12, id="number"),
            pytest.param(["x"], id="array"),
        ],
    )
    def test_spec_without_code(self, bad: object) -> None:
        """A spec without a non-empty string ``spec_code`` is invalid, naming its index."""
        second = spec(spec_code="modelarts.vm.gpu.v100")
        third = spec(spec_code=bad)
        assert_parse_invalid(
            parse_resource_specs, {"specs": [spec(), third, second]}, "$.specs[1].spec_code"
        )

    def test_duplicate_spec_code_keeps_first(self) -> None:
        """A spec_code listed twice keeps its first entry only."""
        body = {
            "specs": [
                spec(max_num=2),
                spec(spec_code="modelarts.vm.gpu.v100", spec_id=4),
                spec(max_num=9, spec_id=3),
            ]
        }
        result = parse_resource_specs(body)
        assert [s.spec_code for s in result.specs] == [
            "modelarts.vm.cpu.2u",
            "modelarts.vm.gpu.v100",
        ]
        assert (result.specs[0].max_nodes, result.specs[0].spec_id) == (2.0, "2")

    @pytest.mark.parametrize(
        ("value", "expected"),
        [("2", 2.0), (" 5 ", 5.0), (3, 3.0), (0, 0.0), ("n/a", None), (None, None), (-1, None)],
    )
    def test_spec_total_count(self, value: object, expected: float | None) -> None:
        """``spec_total_count`` is read from a number or a numeric string, else None; a
        negative count is no count."""
        body: dict[str, Any] = {"is_success": True, "specs": []}
        if value is not None:
            body["spec_total_count"] = value
        assert parse_resource_specs(body).total_count == expected

    def test_missing_specs_is_empty(self) -> None:
        """A success body without ``specs`` has no specs."""
        assert parse_resource_specs({"is_success": True}) == ResourceSpecs(None, ())

    @pytest.mark.parametrize(
        ("body", "path"),
        [
            pytest.param([], "$", id="top-level-array"),
            pytest.param(None, "$", id="top-level-null"),
            pytest.param({"specs": {}}, "$.specs", id="specs-object"),
            pytest.param({"specs": None}, "$.specs", id="specs-null"),
            pytest.param({"specs": [spec(), 3]}, "$.specs[1]", id="spec-number"),
        ],
    )
    def test_malformed_structure(self, body: object, path: str) -> None:
        """A body that is not shaped as documented raises invalid_response naming the path."""
        assert_parse_invalid(parse_resource_specs, body, path)


class TestPoolList:
    def test_node_sums_stay_finite(self) -> None:
        """Two entries whose sum overflows keep the finite part, never publish +Inf."""
        huge = [{"flavor": "f", "count": 1e308}, {"flavor": "f", "count": 1e308}]
        (pool,) = parse_pool_list(pool_list(pool_item(available=huge))).pools
        assert node_counts(pool) == {("f", "available"): 1e308}

    def test_negative_spec_counts_are_left_out(self) -> None:
        """A negative count or maxCount in spec.resources is not a count: it becomes None."""
        item = {"metadata": {"name": "p"}, "spec": {"resources": [
            {"flavor": "f", "count": -3, "maxCount": -1}]}}  # fmt: skip
        (pool,) = parse_pool_list(pool_list(item)).pools
        assert [(f.count, f.max_count) for f in pool.flavors] == [(None, None)]

    def test_documented_shape(self) -> None:
        """The documented body gives one Pool per item: labels, type, phase, flavors with
        count and maxCount, and nodes summed per flavor and state."""
        result = parse_pool_list(load_json(POOL_LIST_BODY))
        assert isinstance(result, PoolList)
        # Pool(name, display_name, pool_type, workspace_id, phase, flavors, nodes); the
        # nodes are compared apart, as a mapping, since their order is not part of the model.
        assert [dataclasses.replace(p, nodes=()) for p in result.pools] == [
            Pool(
                "pool-7f3a2b1c",
                "Prod A",
                "Dedicate",
                "0",
                "Running",
                (PoolFlavor(T4, 4.0, 8.0), PoolFlavor(CPU8, 1.0, 1.0)),
                (),
            ),
            Pool(
                "pool-logical",
                "Shared",
                "Logical",
                "ws-1",
                "Creating",
                (PoolFlavor(CPU8, 2.0, 4.0),),
                (),
            ),
        ]
        assert [node_counts(p) for p in result.pools] == [
            {(T4, "available"): 3.0, (CPU8, "available"): 1.0, (T4, "abnormal"): 1.0},
            {(CPU8, "creating"): 2.0},
        ]

    def test_every_node_state_is_read(self) -> None:
        """Each documented node state (available, abnormal, creating, deleting) is kept apart."""
        body = pool_list(
            pool_item(**{s: [{"flavor": T4, "count": i + 1}] for i, s in enumerate(NODE_STATES)})
        )
        (pool,) = parse_pool_list(body).pools
        assert node_counts(pool) == {(T4, s): float(i + 1) for i, s in enumerate(NODE_STATES)}

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({"kind": "PoolList", "items": []}, id="empty-items"),
            pytest.param({"kind": "PoolList", "metadata": {}}, id="pool-list-without-items"),
            pytest.param({"kind": "PoolList", "items": None}, id="pool-list-null-items"),
        ],
    )
    def test_no_pools(self, body: object) -> None:
        """An empty ``items`` list, or a body saying it is a PoolList without one, is a valid
        answer with no pools."""
        assert parse_pool_list(body) == PoolList(pools=())

    @pytest.mark.parametrize(
        ("given", "phase"),
        [("running", "Running"), ("ERROR", "Error"), ("Upgrading", "Upgrading"), ("", "Unknown")],
    )
    def test_phases_are_spelled_as_documented(self, given: str, phase: str) -> None:
        """A documented phase in any case reads as documented; an unknown one as it is; an
        absent one as Unknown (an empty label would vanish in Prometheus)."""
        item = {"metadata": {"name": "p"}, "status": {"phase": given}}
        assert [p.phase for p in parse_pool_list(pool_list(item)).pools] == [phase]

    @pytest.mark.parametrize(
        ("body", "path"),
        [
            pytest.param({}, "$.items", id="empty-object"),
            pytest.param({"kind": "Pool", "metadata": {}}, "$.items", id="missing-items"),
            pytest.param({"items": None}, "$.items", id="null-items"),
            pytest.param({"items": {}}, "$.items", id="items-object"),
            pytest.param({"items": "pool-a"}, "$.items", id="items-string"),
            pytest.param([], "$", id="top-level-array"),
            pytest.param(None, "$", id="top-level-null"),
            pytest.param(pool_list(pool_item(), 3), "$.items[1]", id="item-number"),
            pytest.param(pool_list(pool_item(), None), "$.items[1]", id="item-null"),
        ],
    )
    def test_malformed_structure(self, body: object, path: str) -> None:
        """A body without an ``items`` array is invalid naming the path, never "no pools"."""
        assert_parse_invalid(parse_pool_list, body, path)

    @pytest.mark.parametrize(
        "item",
        [
            pytest.param({"spec": {"type": "Dedicate"}}, id="no-metadata"),
            pytest.param({"metadata": None}, id="null-metadata"),
            pytest.param({"metadata": ["pool-b"]}, id="metadata-array"),
            pytest.param({"metadata": {"labels": {}}}, id="no-name"),
            pytest.param(pool_item(""), id="empty-name"),
            pytest.param(pool_item(None), id="null-name"),
            pytest.param(pool_item(7), id="numeric-name"),
            pytest.param(pool_item(["pool-b"]), id="array-name"),
        ],
    )
    def test_pool_without_name(self, item: object) -> None:
        """A pool without a non-empty string ``metadata.name`` fails the whole list, naming
        its index (discovery then keeps its last good list)."""
        assert_parse_invalid(
            parse_pool_list,
            pool_list(pool_item(), item, pool_item("pool-c")),
            "$.items[1].metadata.name",
        )

    def test_missing_labels_type_and_phase_are_empty(self) -> None:
        """A pool with only a name has empty strings, phase Unknown, no flavors, no nodes."""
        (pool,) = parse_pool_list(pool_list({"metadata": {"name": "pool-a"}})).pools
        assert pool == Pool("pool-a", "", "", "", "Unknown", (), ())

    @pytest.mark.parametrize(
        ("item", "named"),
        [
            pytest.param({"metadata": {"name": "pool-a", "labels": None}}, [], id="null-labels"),
            pytest.param(
                {"metadata": {"name": "pool-a", "labels": ["x"]}},
                ["$.items[0].metadata.labels"],
                id="labels-array",
            ),
            pytest.param(
                {
                    "metadata": {
                        "name": "pool-a",
                        "labels": {"os.modelarts/name": 3, "os.modelarts/workspace.id": 0},
                    },
                    "spec": {"type": ["Dedicate"], "resources": "none"},
                    "status": {"phase": None, "resources": []},
                },
                [
                    "$.items[0].metadata.labels.os.modelarts/name",
                    "$.items[0].metadata.labels.os.modelarts/workspace.id",
                    "$.items[0].spec.resources",
                    "$.items[0].spec.type",
                    "$.items[0].status.resources",
                ],
                id="wrong-types",
            ),
            pytest.param(
                {"metadata": {"name": "pool-a"}, "spec": None, "status": "Running"},
                ["$.items[0].status"],
                id="spec-and-status-not-objects",
            ),
        ],
    )
    def test_odd_optional_fields_are_empty_and_named(self, item: object, named: list[str]) -> None:
        """Labels, type, phase and resources of the wrong type read as absent, not as errors
        of the whole answer, and each is named in ``problems`` (null is absent: not named)."""
        parsed = parse_pool_list(pool_list(item))
        (pool,) = parsed.pools
        assert dataclasses.replace(pool, problems=()) == Pool(
            "pool-a", "", "", "", "Unknown", (), ()
        )
        assert parsed.problems == pool.problems
        assert sorted(problem.split(": ")[0] for problem in pool.problems) == sorted(named)

    @pytest.mark.parametrize(
        "entry",
        [
            pytest.param({"count": 5}, id="no-flavor"),
            pytest.param({"flavor": "", "count": 5}, id="empty-flavor"),
            pytest.param({"flavor": 5, "count": 5}, id="numeric-flavor"),
            pytest.param({"flavor": T4}, id="no-count"),
            pytest.param({"flavor": T4, "count": None}, id="null-count"),
            pytest.param({"flavor": T4, "count": "five"}, id="word-count"),
            pytest.param({"flavor": T4, "count": ""}, id="empty-count"),
            pytest.param({"flavor": T4, "count": True}, id="bool-count"),
            pytest.param({"flavor": T4, "count": [5]}, id="array-count"),
            pytest.param({"flavor": T4, "count": "NaN"}, id="nan-count"),
            pytest.param({"flavor": T4, "count": "inf"}, id="inf-count"),
            pytest.param({"flavor": T4, "count": -1}, id="negative-count"),
            pytest.param({"flavor": T4, "count": "-2"}, id="negative-string-count"),
            pytest.param("modelarts.vm.gpu.t4", id="string-entry"),
            pytest.param(None, id="null-entry"),
        ],
    )
    def test_bad_node_entries_are_skipped(self, entry: object) -> None:
        """A node entry without a flavor or a count >= 0 is left out; the others stay."""
        good = {"flavor": CPU8, "count": 2}
        body = pool_list(pool_item(available=[entry, good], abnormal=[entry]))
        (pool,) = parse_pool_list(body).pools
        assert node_counts(pool) == {(CPU8, "available"): 2.0}

    def test_a_node_state_as_one_object_is_read_as_the_sdk_types_it(self) -> None:
        """The official SDK types each state of ``status.resources`` as one ``{flavor,
        count}`` object (``PoolResourceFlavorCount``): read as one entry, as a list is."""
        body = pool_list(
            pool_item(
                available={"flavor": T4, "count": 3, "maxCount": 4, "azs": [], "nodePool": "x"},
                abnormal=[{"flavor": T4, "count": 1}],
            )
        )
        parsed = parse_pool_list(body)
        assert node_counts(parsed.pools[0]) == {(T4, "available"): 3.0, (T4, "abnormal"): 1.0}
        assert parsed.problems == ()

    def test_an_empty_object_is_no_nodes_not_a_problem(self) -> None:
        """``{}`` for a node state (the SDK's object, with no nodes in it) is no entry."""
        parsed = parse_pool_list(pool_list(pool_item(creating={}, available=[])))
        assert parsed.pools[0].nodes == ()
        assert parsed.problems == ()

    def test_an_undocumented_state_is_ignored_and_an_unreadable_one_named(self) -> None:
        """An undocumented node state gives no nodes, quietly (it is not documented); a
        documented one that is neither a list nor an object gives none, and is named."""
        body = pool_list(pool_item(draining=[{"flavor": T4, "count": 1}], creating="3"))
        parsed = parse_pool_list(body)
        assert parsed.pools[0].nodes == ()
        assert parsed.problems == (
            '$.items[0].status.resources.creating: expected a list of objects, got "3"',
        )

    def test_string_counts(self) -> None:
        """Counts given as numeric strings are read as numbers, in spec and status alike."""
        item = pool_item(available=[{"flavor": T4, "count": " 3 "}, {"flavor": T4, "count": "1"}])
        item["spec"] = {"resources": [{"flavor": T4, "count": "4", "maxCount": "8"}]}
        (pool,) = parse_pool_list(pool_list(item)).pools
        assert pool.flavors == (PoolFlavor(T4, 4.0, 8.0),)
        assert node_counts(pool) == {(T4, "available"): 4.0}

    def test_flavor_numbers_that_are_not_numbers_are_none_and_named(self) -> None:
        """A spec flavor keeps its row when count or maxCount is not a number (None there),
        an entry without a flavor is left out, and each is named in ``problems``."""
        item = pool_item()
        item["spec"] = {
            "resources": [
                {"flavor": T4, "count": "many"},
                {"flavor": CPU8, "count": 2, "maxCount": {}},
                {"count": 1, "maxCount": 2},
            ]
        }
        parsed = parse_pool_list(pool_list(item))
        (pool,) = parsed.pools
        assert pool.flavors == (PoolFlavor(T4, None, None), PoolFlavor(CPU8, 2.0, None))
        assert parsed.problems == (
            '$.items[0].spec.resources[0].count: expected a non-negative count, got "many"',
            "$.items[0].spec.resources[1].maxCount: expected a non-negative count, got {}",
            "$.items[0].spec.resources[2].flavor: expected a flavor name, got null",
        )

    def test_duplicate_flavor_keeps_first(self) -> None:
        """A flavor listed twice in ``spec.resources`` keeps its first entry."""
        item = pool_item()
        item["spec"] = {
            "resources": [
                {"flavor": T4, "count": 1, "maxCount": 2},
                {"flavor": T4, "count": 9, "maxCount": 9},
            ]
        }
        assert parse_pool_list(pool_list(item)).pools[0].flavors == (PoolFlavor(T4, 1.0, 2.0),)

    def test_duplicate_pool_keeps_first(self) -> None:
        """A pool name listed twice keeps its first entry, in the order of first appearance."""
        first = pool_item("pool-a", available=[{"flavor": T4, "count": 1}])
        again = pool_item("pool-a", available=[{"flavor": T4, "count": 7}])
        result = parse_pool_list(pool_list(first, pool_item("pool-b"), again))
        assert [p.name for p in result.pools] == ["pool-a", "pool-b"]
        assert node_counts(result.pools[0]) == {(T4, "available"): 1.0}

    def test_huge_node_count_is_skipped(self) -> None:
        """A node count too large for a float is left out rather than crashing the parse."""
        raw = (
            b'{"items": [{"metadata": {"name": "pool-a"}, "status": {"resources": {"available":'
            b' [{"flavor": "f", "count": %s}, {"flavor": "g", "count": 1}]}}}]}'
        ) % HUGE_INT_TEXT.encode()
        (pool,) = parse_pool_list(load_json(raw)).pools
        assert node_counts(pool) == {("g", "available"): 1.0}


class TestLoadJson:
    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param(b'{"statistics": ', id="truncated"),
            pytest.param(b"", id="empty"),
            pytest.param(b"<html>502 Bad Gateway</html>", id="html"),
            pytest.param(b"\x80\x81 not utf-8", id="bad-utf8"),
        ],
    )
    def test_malformed(self, raw: bytes) -> None:
        """A body that is not JSON raises ResponseError with code invalid_json."""
        with pytest.raises(ResponseError) as info:
            load_json(raw)
        assert info.value.local_code == "invalid_json"
        assert info.value.code == "invalid_json"

    def test_deeply_nested_arrays(self) -> None:
        """100000 nested arrays raise invalid_json instead of a RecursionError."""
        with pytest.raises(ResponseError) as info:
            load_json(b"[" * 100_000 + b"]" * 100_000)
        assert info.value.local_code == "invalid_json"

    def test_valid(self) -> None:
        """A JSON body decodes to plain Python data."""
        assert load_json(b'{"a": [1, "2", null, true]}') == {"a": [1, "2", None, True]}


class TestErrorFields:
    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            pytest.param(
                {"error_code": "ModelArts.50015001", "error_msg": "Pool {name} not found."},
                ("ModelArts.50015001", "Pool {name} not found."),
                id="error_code-error_msg",
            ),
            pytest.param(
                {"error_code": "ModelArts.0105", "error_message": "Error string"},
                ("ModelArts.0105", "Error string"),
                id="error_message",
            ),
            pytest.param(
                {"errorCode": "ModelArts.4204", "errorMsg": "Workspace not found"},
                ("ModelArts.4204", "Workspace not found"),
                id="camel-case",
            ),
            pytest.param(
                {"code": "APIGW.0308", "message": "limit:200,time:1 second"},
                ("APIGW.0308", "limit:200,time:1 second"),
                id="code-message",
            ),
            pytest.param(
                {"error": {"code": 401, "message": "The request you have made requires auth."}},
                (None, "The request you have made requires auth."),
                id="iam-nested",
            ),
            pytest.param(
                {"error": {"code": "APIG.0301", "message": "Incorrect token"}},
                ("APIG.0301", "Incorrect token"),
                id="iam-nested-string-code",
            ),
            pytest.param(
                {"error_code": "ModelArts.50004000"},
                ("ModelArts.50004000", ""),
                id="code-only",
            ),
            pytest.param({"error_msg": "Bad request."}, (None, "Bad request."), id="message-only"),
            pytest.param({}, (None, ""), id="empty-object"),
            pytest.param([], (None, ""), id="array"),
            pytest.param("Bad Gateway", (None, ""), id="string"),
            pytest.param(None, (None, ""), id="null"),
        ],
    )
    def test_documented_shapes(self, body: object, expected: tuple[str | None, str]) -> None:
        """Every documented error-body variant yields its (code, message)."""
        assert error_fields(body) == expected

    @pytest.mark.parametrize(
        "code",
        [
            pytest.param("<script>", id="markup"),
            pytest.param("ModelArts." + "9" * 190, id="200-chars"),  # 10 + 190 characters
            pytest.param(50015001, id="integer"),
            pytest.param("ModelArts", id="no-dot"),
            pytest.param("Model Arts.1", id="space"),
            pytest.param("", id="empty"),
            pytest.param(None, id="null"),
        ],
    )
    def test_non_code_shaped_code_is_dropped(self, code: object) -> None:
        """A code that does not look like a Huawei error code is None; the message is kept."""
        assert error_fields({"error_code": code, "error_msg": "Bad request."}) == (
            None,
            "Bad request.",
        )

    def test_long_message_is_cut(self) -> None:
        """The message is cut to the documented maximum of 512 characters."""
        _code, message = error_fields({"error_code": "ModelArts.0105", "error_msg": "x" * 600})
        assert message == "x" * 512

    def test_non_string_message_is_ignored(self) -> None:
        """A message that is not a string is ignored in favour of a later string one."""
        body = {"error_msg": {"zh": "?"}, "message": "fallback"}
        assert error_fields(body) == (None, "fallback")


# ---------------------------------------------------------------------------- properties

_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["3", "-1", "NaN", "inf", "1e999", " 2 ", "true", ""])
)
_KEYS = st.sampled_from(
    [
        "statistics",
        "statics",
        "items",
        "type",
        "total",
        "status",
        "Running",
        "specs",
        "spec_code",
        "is_success",
        "error_code",
        "gpu_num",
        "no_resource",
        "metadata",
        "name",
        "labels",
        "os.modelarts/name",
        "os.modelarts/workspace.id",
        "spec",
        "resources",
        "flavor",
        "count",
        "maxCount",
        "phase",
        *NODE_STATES,
    ]
) | st.text(max_size=8)
# Values that have broken number handling before, tried more often inside the documents.
_EDGES: st.SearchStrategy[Any] = st.sampled_from(
    [int(HUGE_INT_TEXT), -int(HUGE_INT_TEXT), "NaN", "1e999", -1, True, None, {}, [], "", "7"]
)
JSON_VALUES = st.recursive(
    _LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=16,
)


def _paths(node: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) to a value inside ``node``, the root included."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, document: object) -> object:
    """``document`` with one value replaced or removed, or a key added, at a drawn path."""
    doc = copy.deepcopy(document)
    path = draw(st.sampled_from(_paths(doc)))
    if not path:
        return draw(JSON_VALUES)
    parent: Any = doc
    for step in path[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "replace", "replace", "remove", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(_EDGES | _LEAVES | JSON_VALUES)
    elif action == "remove":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(_KEYS)] = draw(JSON_VALUES)
    else:
        parent.append(draw(JSON_VALUES))
    return doc


def assert_unique(values: list[str]) -> None:
    assert len(values) == len(set(values)), values


_PROPERTY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestNeverCrashes:
    @_PROPERTY
    @given(JSON_VALUES | mutated(json.loads(WORKLOAD_BODY)) | mutated(workload([], "statics")))
    def test_workload_statistics(self, body: object) -> None:
        """Any JSON value gives WorkloadStatistics with finite counts >= 0, or a PollError."""
        try:
            result = parse_workload_statistics(body)
        except PollError:
            return
        assert isinstance(result, WorkloadStatistics)
        for job in result.job_types:
            assert isinstance(job.job_type, str)
            assert job.job_type
            assert job.total is None or 0 <= job.total < float("inf")
            for status, count in job.statuses:
                assert status == status.lower()
                assert 0 <= count < float("inf")

    @_PROPERTY
    @given(
        JSON_VALUES | mutated(json.loads(SPECS_SAMPLE)) | mutated(json.loads(SPECS_FAILED_SAMPLE))
    )
    def test_resource_specs(self, body: object) -> None:
        """Any JSON value gives ResourceSpecs with unique spec codes, or a PollError."""
        try:
            result = parse_resource_specs(body)
        except PollError:
            return
        assert isinstance(result, ResourceSpecs)
        assert_unique([s.spec_code for s in result.specs])
        for item in result.specs:
            for label in (item.spec_id, item.gpu_type, item.storage, item.interface_type):
                assert isinstance(label, str)

    @_PROPERTY
    @given(JSON_VALUES | mutated(json.loads(POOL_LIST_BODY)) | mutated(pool_list(pool_item())))
    def test_pool_list(self, body: object) -> None:
        """Any JSON value gives uniquely named pools with unique flavors and node counts
        >= 0, or raises ResponseError (the parser's only exception)."""
        try:
            pools = parse_pool_list(body).pools
        except ResponseError:
            return
        assert_unique([pool.name for pool in pools])
        for pool in pools:
            assert pool.name
            assert all(isinstance(text, str) for text in dataclasses.astuple(pool)[:5])
            assert_unique([flavor.flavor for flavor in pool.flavors])
            assert all(flavor.flavor for flavor in pool.flavors)
            node_counts(pool)  # no (flavor, state) pair twice
            for flavor, state, count in pool.nodes:
                assert flavor
                assert state in NODE_STATES
                assert count >= 0


class TestUnencodableStrings:
    def test_lone_surrogates_become_replacement_characters(self) -> None:
        """JSON's lone surrogate escapes in names are replaced, so the exposition can render."""
        body = load_json(
            b'{"statistics": {"items": [{"type": "tr\\ud800in", "total": 1,'
            b' "status": {"Run\\udfffning": 1}}]}}'
        )
        (item,) = parse_workload_statistics(body).job_types
        assert item.job_type == "tr\ufffdin"
        assert item.statuses == (("run\ufffdning", 1.0),)
        specs = parse_resource_specs(
            load_json(b'{"specs": [{"spec_code": "gpu\\ud800", "gpu_type": "\\udc00"}]}')
        )
        assert (specs.specs[0].spec_code, specs.specs[0].gpu_type) == ("gpu\ufffd", "\ufffd")
        rendered = f"{item.job_type}{specs.specs[0].spec_code}".encode()
        assert rendered == "tr\ufffdingpu\ufffd".encode()

    def test_pool_list_lone_surrogates(self) -> None:
        """Lone surrogates in pool, display, flavor and label strings become U+FFFD."""
        body = load_json(
            b'{"items": [{"metadata": {"name": "pool\\ud800", "labels": {'
            b'"os.modelarts/name": "Prod\\udfff", "os.modelarts/workspace.id": "\\udc00"}},'
            b' "spec": {"type": "Ded\\ud801", "resources": [{"flavor": "t4\\ud800", "count": 1}]},'
            b' "status": {"phase": "Run\\udbff", "resources": {"available":'
            b' [{"flavor": "\\ud800cpu", "count": 2}]}}}]}'
        )
        (pool,) = parse_pool_list(body).pools
        assert (pool.name, pool.display_name, pool.workspace_id) == (
            "pool\ufffd",
            "Prod\ufffd",
            "\ufffd",
        )
        assert (pool.pool_type, pool.phase) == ("Ded\ufffd", "Run\ufffd")
        assert pool.flavors == (PoolFlavor("t4\ufffd", 1.0, None),)
        assert pool.nodes == (("\ufffdcpu", "available", 2.0),)
        rendered = "".join(dataclasses.astuple(pool)[:5]).encode()  # no UnicodeEncodeError
        assert rendered == "pool\ufffdProd\ufffdDed\ufffd\ufffdRun\ufffd".encode()


# ------------------------------------------------------------- never a silent zero

#: A ListPools item with every documented field, both node-count shapes among its states.
FULL_POOL = {
    "metadata": {
        "name": "pool-a",
        "labels": {"os.modelarts/name": "shared", "os.modelarts/workspace.id": "0"},
    },
    "spec": {"type": "Dedicate", "resources": [{"flavor": T4, "count": 4, "maxCount": 8}]},
    "status": {
        "phase": "Running",
        "resources": {
            "available": [{"flavor": T4, "count": 3}],
            "abnormal": {"flavor": T4, "count": 1},
            "creating": [],
            "deleting": [],
        },
    },
}

_NOT_A_NUMBER = st.text().filter(lambda text: parse._number(text) is None)
#: Values of the wrong type for each kind of documented field.
WRONG = {
    "number": st.one_of(st.booleans(), st.lists(st.integers(), max_size=2), _NOT_A_NUMBER),
    "count": st.one_of(
        st.booleans(),
        st.dictionaries(st.text(), st.integers(), max_size=2),
        st.integers(-9, -1),
        _NOT_A_NUMBER,
    ),
    "string": st.one_of(st.integers(), st.booleans(), st.lists(st.text(), max_size=2)),
    "flag": st.one_of(
        st.integers(),
        st.lists(st.booleans(), max_size=1),
        st.text().filter(lambda t: t.lower() not in ("true", "false")),
    ),
    "list": st.one_of(st.integers(), st.text(), st.booleans()),
}
_SPEC = ("specs", 1)
_POOL = ("items", 0)
#: (parser, body, path in the body, kind) for each documented field of the three answers.
FIELDS: list[tuple[Callable[[Any], object], Any, tuple[str | int, ...], str]] = [
    *[
        (parse_workload_statistics, json.loads(WORKLOAD_BODY), path, "count")
        for path in [
            ("statistics", "items", 0, "total"),
            *(("statistics", "items", 0, "status", s) for s in DOCUMENTED_STATUSES),
        ]
    ],
    (
        parse_workload_statistics,
        json.loads(WORKLOAD_BODY),
        ("statistics", "items", 0, "type"),
        "string",
    ),
    *[
        (parse_resource_specs, json.loads(SPECS_SAMPLE), (*_SPEC, key), kind)
        for key, kind in [
            ("spec_code", "string"),
            ("no_resource", "flag"),
            ("gpu_num", "number"),
            ("core", "number"),
            ("cpu", "number"),
            ("max_num", "number"),
            ("unit_num", "number"),
        ]
    ],
    (parse_resource_specs, json.loads(SPECS_SAMPLE), ("spec_total_count",), "count"),
    (parse_resource_specs, json.loads(SPECS_SAMPLE), ("is_success",), "flag"),
    *[
        (parse_pool_list, {"kind": "PoolList", "items": [FULL_POOL]}, (*_POOL, *path), kind)
        for path, kind in [
            (("metadata", "name"), "string"),
            (("metadata", "labels", "os.modelarts/name"), "string"),
            (("metadata", "labels", "os.modelarts/workspace.id"), "string"),
            (("spec", "type"), "string"),
            (("spec", "resources"), "list"),
            (("spec", "resources", 0, "flavor"), "string"),
            (("spec", "resources", 0, "count"), "count"),
            (("spec", "resources", 0, "maxCount"), "count"),
            (("status", "phase"), "string"),
            (("status", "resources", "available"), "list"),
            (("status", "resources", "available", 0, "flavor"), "string"),
            (("status", "resources", "available", 0, "count"), "count"),
            (("status", "resources", "abnormal", "count"), "count"),
        ]
    ],
]


def _json_path(path: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _without_problems(result: object) -> object:
    if dataclasses.is_dataclass(result) and hasattr(result, "problems"):
        return dataclasses.replace(result, problems=())  # type: ignore[type-var]
    return result


class TestNeverSilent:
    @pytest.mark.parametrize(
        ("parser", "body", "path", "kind"),
        FIELDS,
        ids=[
            f"{parser.__name__.removeprefix('parse_')}:{_json_path(path)}"
            for parser, _, path, _ in FIELDS
        ],
    )
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def test_a_wrong_type_is_read_right_or_counted(
        self,
        parser: Callable[[Any], object],
        body: Any,
        path: tuple[str | int, ...],
        kind: str,
        data: st.DataObject,
    ) -> None:
        """Any documented field read as a count, number, flag, list or name, given a value
        of the wrong type, yields what the original gave, or an error (the whole answer
        refused), or the answer with that field's JSON path in ``problems``: never a quiet
        zero or a quietly missing series. (Fields that only become label values, such as
        ``spec_id`` or ``gpu_type``, take any scalar as its text.)"""
        mutated = copy.deepcopy(body)
        holder = mutated
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = data.draw(WRONG[kind])
        where = _json_path(path)
        try:
            result = parser(mutated)
        except PollError:
            return  # refused as a whole: counted and logged by the poller
        if _without_problems(result) == parser(body):
            return
        problems = getattr(result, "problems", ())
        assert any(p.startswith(where) for p in problems), (where, problems)
