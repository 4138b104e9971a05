"""``modelarts-exporter probe``, run as a real process against the simulator over real
sockets: one row per request (or request not sent), what to do about each, the exit code,
and never a retry or a secret."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from exporter.probe import HEADER
from exporter.simulator import Fault, Simulator, default_specs
from tests.support.processes import run_cli

pytestmark = pytest.mark.e2e

PROJECT = "9b0be9b0be9b0be9b0be9b0be9b0be9b"
OTHER = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"
AK = "PROBEACCESSKEY000000"
SK = "probe-sentinel-secret-key-0123456789"
OTHER_AK = "PROBEOTHERKEY0000000"
OTHER_SK = "probe-other-sentinel-secret-key-987654"
WRONG_SK = "probe-wrong-sentinel-secret-key-000000"
DOMAIN, USER, PASSWORD = "probe-domain", "probe-user", "probe-sentinel-password-1234"
SECRETS = (SK, OTHER_SK, WRONG_SK, PASSWORD)
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """Two projects: PROJECT with pool-a and pool-b and the default specs, OTHER with
    pool-x; IAM knows one user."""
    sim = Simulator(access_keys={AK: SK, OTHER_AK: OTHER_SK}, iam_users={(DOMAIN, USER): PASSWORD})
    sim.set_pool(PROJECT, "pool-a", {"train": {"Running": 3, "Completed": 4}})
    sim.set_pool(PROJECT, "pool-b", {"infer": {"Running": 2}})
    sim.set_pool(OTHER, "pool-x", {"notebook": {"Running": 1}})
    for project in (PROJECT, OTHER):
        for job_type in ("train", "inference"):
            sim.set_specs(project, job_type, default_specs(job_type))
    with sim:
        yield sim


def target(
    sim: Simulator,
    project: str = PROJECT,
    *,
    pools: tuple[str, ...] = (),
    job_types: tuple[str, ...] = (),
    discovery: bool = False,
    sk_env: str = "PROBE_SK",
    ak_env: str = "PROBE_AK",
    **extra: object,
) -> dict[str, object]:
    """One target's config, its AK/SK from the named environment variables."""
    found: dict[str, object] = {
        "project_id": project,
        "region": "cn-north-4",
        "endpoint": sim.url,
        "iam_endpoint": sim.url,
        "credentials": {"access_key": {"env": ak_env}, "secret_key": {"env": sk_env}},
    }
    if pools:
        found["pools"] = list(pools)
    if job_types:
        found["resource_specs"] = {"job_types": list(job_types)}
    if discovery:
        found["discovery"] = {}
    return {**found, **extra}


def write_config(tmp_path: Path, *targets: Mapping[str, object], **top: object) -> Path:
    document = {"timeout": "2s", **top, "targets": list(targets)}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def probe(path: Path) -> subprocess.CompletedProcess[str]:
    """``modelarts-exporter probe``; every secret is in the environment, none in the output."""
    env = {
        **os.environ,
        "PROBE_AK": AK,
        "PROBE_SK": SK,
        "PROBE_OTHER_AK": OTHER_AK,
        "PROBE_OTHER_SK": OTHER_SK,
        "PROBE_WRONG_SK": WRONG_SK,
        "PROBE_PASSWORD": PASSWORD,
    }
    result = run_cli("probe", f"--config.file={path}", env=env)
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result


def table(stdout: str) -> list[dict[str, str]]:
    """The rows of the printed table, by column; checks the header and the alignment."""
    lines = stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == list(HEADER), lines[0]
    starts = [lines[0].index(name) for name in HEADER]
    rows = []
    for line in lines[1 : lines.index("")]:
        for start in starts[1:]:  # every cell starts under its heading
            assert line[start - 2 : start] == "  ", (line, start)
            assert line[start] != " ", (line, start)
        rows.append(dict(zip(HEADER, re.split(r"\s{2,}", line, maxsplit=7), strict=True)))
    return rows


def verdict(stdout: str) -> str:
    return stdout.rstrip("\n").splitlines()[-1]


def project_requests(sim: Simulator, project: str, path_part: str = "") -> list[str]:
    return [r.path for r in sim.requests() if f"/{project}/" in r.path and path_part in r.path]


def cells(row: Mapping[str, str], *names: str) -> tuple[str, ...]:
    return tuple(row[name] for name in names)


# --------------------------------------------------------------------------- rows


def test_all_answered_prints_ok_rows_and_exits_0(simulator: Simulator, tmp_path: Path) -> None:
    """ListPools, each job type's specs, each configured pool and the first discovered pool
    not configured: one request each, 200 with its request id and a summary; exit 0."""
    config = write_config(
        tmp_path, target(simulator, pools=("pool-a",), job_types=("train",), discovery=True)
    )
    result = probe(config)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table(result.stdout)
    assert [cells(r, "API", "ITEM", "STATUS", "CODE") for r in rows] == [
        ("ListPools", "-", "200", "-"),
        ("QueryJobResourceSpecs", "train", "200", "-"),
        ("ShowWorkloadStatistics", "pool-a", "200", "-"),
        ("ShowWorkloadStatistics", "pool-b", "200", "-"),
    ]
    assert {cells(r, "PROJECT", "REGION") for r in rows} == {(PROJECT, "cn-north-4")}
    assert all(REQUEST_ID.match(r["REQUEST ID"]) for r in rows), rows
    specs = default_specs("train")
    full = sum(1 for spec in specs if spec.get("no_resource"))
    assert [r["WHAT TO DO"] for r in rows] == [
        "ok: 2 pools listed, 2 taken by the discovery rules",
        f"ok: {len(specs)} specs, {full} without capacity",
        "ok: 7 jobs, 3 running",
        "ok: 2 jobs, 2 running (a pool ListPools found)",
    ]
    assert verdict(result.stdout) == "all 4 requests answered 2xx"
    assert len(simulator.requests()) == 4


def test_unreadable_fields_are_not_ok(simulator: Simulator, tmp_path: Path) -> None:
    """A spec list with a field the exporter cannot read (it would serve the rest and count
    invalid_field) is answered, but not ok: the row names the field, and the exit is 1."""
    specs = default_specs("train")
    specs[0]["gpu_num"] = "eight"
    simulator.set_specs(PROJECT, "train", specs)
    config = write_config(tmp_path, target(simulator, pools=(), job_types=("train",)))
    result = probe(config)
    assert result.returncode == 1, result.stdout + result.stderr
    (row,) = table(result.stdout)
    assert cells(row, "API", "STATUS", "CODE") == ("QueryJobResourceSpecs", "200", "invalid_field")
    assert row["WHAT TO DO"].startswith(
        "answered, but 1 field(s) unreadable, e.g. $.specs[0].gpu_num"
    )


def test_unknown_api_is_a_wrong_region_or_endpoint(simulator: Simulator, tmp_path: Path) -> None:
    """404 APIGW.0101 (the gateway has no such API) says to check region and endpoint; the
    other items are still asked; exit 1."""
    simulator.inject(Fault(status=404, api="specs"))
    config = write_config(tmp_path, target(simulator, pools=("pool-a",), job_types=("train",)))
    result = probe(config)
    assert result.returncode == 1
    specs, pool = table(result.stdout)
    assert cells(specs, "STATUS", "CODE") == ("404", "APIGW.0101")
    assert REQUEST_ID.match(specs["REQUEST ID"])
    assert specs["WHAT TO DO"] == f"no such API at {simulator.url}: wrong region or endpoint"
    assert cells(pool, "STATUS", "WHAT TO DO") == ("200", "ok: 7 jobs, 3 running")
    assert verdict(result.stdout) == "1 of 2 requests answered 2xx"


def test_refused_signature_stops_that_target_after_one_request(
    simulator: Simulator, tmp_path: Path
) -> None:
    """A wrong SK: the target's first request is refused (401 APIGW.0301), the advice names
    the AK/SK and the clock, the rest of that target is not sent (the simulator saw exactly
    one request for it), and the next target is probed all the same."""
    wrong = target(
        simulator, pools=("pool-a", "pool-b"), job_types=("train",), discovery=True,
        sk_env="PROBE_WRONG_SK",
    )  # fmt: skip
    good = target(
        simulator, OTHER, pools=("pool-x",), ak_env="PROBE_OTHER_AK", sk_env="PROBE_OTHER_SK"
    )
    result = probe(write_config(tmp_path, wrong, good))
    assert result.returncode == 1
    rows = table(result.stdout)
    refused, *not_sent, other = rows
    assert cells(refused, "API", "STATUS", "CODE") == ("ListPools", "401", "APIGW.0301")
    assert "check the AK/SK" in refused["WHAT TO DO"]
    assert "X-Sdk-Date must be within 15 minutes" in refused["WHAT TO DO"]
    assert [cells(r, "API", "ITEM", "STATUS", "CODE", "REQUEST ID") for r in not_sent] == [
        ("QueryJobResourceSpecs", "train", "-", "-", "-"),
        ("ShowWorkloadStatistics", "pool-a", "-", "-", "-"),
        ("ShowWorkloadStatistics", "pool-b", "-", "-", "-"),
    ]
    assert {r["WHAT TO DO"] for r in not_sent} == {
        "not sent: the target stopped at the 401 above (never retried)"
    }
    assert cells(other, "PROJECT", "STATUS") == (OTHER, "200")
    assert len(project_requests(simulator, PROJECT)) == 1
    assert simulator.failure_count(AK) == 1
    assert verdict(result.stdout) == "1 of 2 requests answered 2xx; 3 not sent"


@pytest.mark.parametrize(
    ("api", "name", "advice"),
    [
        ("pools", "ListPools", "grant the IAM action modelarts:pool:list in this project"),
        ("workloads", "ShowWorkloadStatistics", "grant the IAM action modelarts:pool:get"),
        ("specs", "QueryJobResourceSpecs", "the API Reference documents no IAM action"),
    ],
)
def test_forbidden_names_the_permission_the_api_needs(
    simulator: Simulator, tmp_path: Path, api: str, name: str, advice: str
) -> None:
    """403 names the IAM action of the API refused (docs/credentials.md) and stops the
    target: nothing after it is sent."""
    simulator.inject(Fault(status=403, api=api))
    items = {"pools": (), "workloads": ("pool-a",), "specs": ("train",)}
    config = target(
        simulator,
        discovery=api == "pools",
        pools=("pool-b", *items["workloads"]),
        job_types=items["specs"],
    )
    result = probe(write_config(tmp_path, config))
    assert result.returncode == 1
    rows = table(result.stdout)
    refused = next(r for r in rows if r["STATUS"] == "403")
    assert cells(refused, "API", "CODE") == (name, "APIGW.0302")
    assert advice in refused["WHAT TO DO"]
    assert "docs/credentials.md" in refused["WHAT TO DO"]
    after = rows[rows.index(refused) + 1 :]
    assert after, "nothing after the refusal to show as not sent"
    assert all(r["WHAT TO DO"].startswith("not sent: ") for r in after)
    assert len(simulator.requests()) == rows.index(refused) + 1


def test_missing_pool_says_remove_it_or_turn_on_discovery(
    simulator: Simulator, tmp_path: Path
) -> None:
    """404 ModelArts.50015001 (no such pool) says to remove the pool from ``pools`` or to
    turn on discovery; the following items are still asked."""
    config = write_config(tmp_path, target(simulator, pools=("pool-gone", "pool-a")))
    result = probe(config)
    assert result.returncode == 1
    gone, pool = table(result.stdout)
    assert cells(gone, "ITEM", "STATUS", "CODE") == ("pool-gone", "404", "ModelArts.50015001")
    assert gone["WHAT TO DO"] == "no such pool: remove it from pools, or turn on discovery"
    assert cells(pool, "ITEM", "STATUS") == ("pool-a", "200")


def test_throttled_says_lower_the_rate_and_is_not_retried(
    simulator: Simulator, tmp_path: Path
) -> None:
    """429 says to lower requests_per_second, naming its value; the 429 is not retried
    (a single 429 is injected: a retry would have answered 200)."""
    simulator.inject(Fault.throttled(api="specs", times=1))
    config = write_config(
        tmp_path,
        target(simulator, job_types=("train",), pools=("pool-a",), requests_per_second=5),
        retry={"max_attempts": 3, "initial_backoff": "50ms", "max_backoff": "100ms"},
    )
    result = probe(config)
    assert result.returncode == 1
    throttled, pool = table(result.stdout)
    assert cells(throttled, "STATUS", "CODE") == ("429", "APIGW.0308")
    assert throttled["WHAT TO DO"] == "throttled: lower requests_per_second (now 5/s)"
    assert pool["STATUS"] == "200"
    assert len(project_requests(simulator, PROJECT, "resource-specs")) == 1


def test_timeout_names_the_network_path_and_is_not_retried(
    simulator: Simulator, tmp_path: Path
) -> None:
    """A request without an answer within ``timeout`` says to check the network path to
    the endpoint; it is not retried (a retry would have been answered at once)."""
    simulator.inject(Fault(latency=1.0, api="specs", times=1))
    config = write_config(
        tmp_path,
        target(simulator, job_types=("train",), pools=("pool-a",)),
        timeout="300ms",
        retry={"max_attempts": 3, "initial_backoff": "50ms", "max_backoff": "100ms"},
    )
    result = probe(config)
    assert result.returncode == 1
    late, pool = table(result.stdout)
    assert cells(late, "STATUS", "CODE", "REQUEST ID") == ("-", "timeout", "-")
    assert late["WHAT TO DO"] == (
        f"no answer within 0.3s: check the network path to {simulator.url} (proxy, "
        "firewall), or raise timeout"
    )
    assert pool["STATUS"] == "200"
    time.sleep(1.0)  # the late answer is recorded once it is written
    assert len(project_requests(simulator, PROJECT, "resource-specs")) == 1


def test_three_requests_without_an_answer_stop_the_target(
    simulator: Simulator, tmp_path: Path
) -> None:
    """As the exporter does, three requests in a row without an answer stop the target:
    a blocked network costs three timeouts, not one per item."""
    simulator.inject(Fault(latency=0.6))
    pools = ("pool-a", "pool-b", "pool-c", "pool-d")
    config = write_config(tmp_path, target(simulator, pools=pools), timeout="200ms")
    result = probe(config)
    assert result.returncode == 1
    rows = table(result.stdout)
    assert [r["CODE"] for r in rows] == ["timeout", "timeout", "timeout", "-"]
    assert rows[3]["WHAT TO DO"] == "not sent: 3 requests in a row got no answer (see above)"
    time.sleep(1.0)
    assert len(simulator.requests()) == 3


def test_refused_password_stops_the_target_before_modelarts(
    simulator: Simulator, tmp_path: Path
) -> None:
    """IAM password credentials: a wrong password costs one IAM request, no ModelArts
    request, and the advice names the user, password and domain."""
    credentials = {
        "type": "password",
        "user": USER,
        "domain": DOMAIN,
        "password": {"env": "PROBE_WRONG_SK"},
    }
    config = target(simulator, pools=("pool-a",), job_types=("train",), credentials=credentials)
    result = probe(write_config(tmp_path, config))
    assert result.returncode == 1
    refused, not_sent = table(result.stdout)
    assert refused["STATUS"] == "401"
    assert refused["WHAT TO DO"] == (
        "IAM refused the password: check credentials.user, password and domain"
    )
    assert not_sent["WHAT TO DO"].startswith("not sent: ")
    assert [r.path for r in simulator.requests()] == ["/v3/auth/tokens"]


def test_metadata_without_an_agency_stops_the_target(simulator: Simulator, tmp_path: Path) -> None:
    """Credentials from the metadata service of a server without an agency: the first
    item says so, the rest are not sent, and ModelArts is never asked; with an agency
    attached, every item answers."""
    simulator.agency.configure(attached=False)
    credentials = {"type": "metadata", "url": simulator.url}
    config = target(simulator, pools=("pool-a",), job_types=("train",), credentials=credentials)
    path = write_config(tmp_path, config)
    result = probe(path)
    assert result.returncode == 1
    refused, not_sent = table(result.stdout)
    assert cells(refused, "STATUS", "CODE") == ("401", "metadata_unavailable")
    assert refused["WHAT TO DO"].startswith("no credentials from the metadata service: ")
    assert "no agency is attached to this server" in refused["WHAT TO DO"]
    assert not_sent["WHAT TO DO"].startswith("not sent: ")
    assert project_requests(simulator, PROJECT) == []
    simulator.agency.configure(attached=True)
    assert probe(path).returncode == 0


def test_a_secret_in_an_answer_is_masked(simulator: Simulator, tmp_path: Path) -> None:
    """An error without advice of its own shows ModelArts' message, with any configured
    secret in it masked."""
    body = json.dumps({"error_code": "ModelArts.4090", "error_msg": f"conflict: {SK} in use"})
    simulator.inject(Fault(status=409, body=body.encode(), api="specs"))
    result = probe(write_config(tmp_path, target(simulator, job_types=("train",))))
    assert result.returncode == 1
    (row,) = table(result.stdout)
    assert cells(row, "STATUS", "CODE") == ("409", "ModelArts.4090")
    assert row["WHAT TO DO"] == "conflict: *** in use (docs/troubleshooting.md)"


# --------------------------------------------------------------------------- command line


def test_bad_config_exits_2_naming_the_key(simulator: Simulator, tmp_path: Path) -> None:
    """A bad config is reported as check-config reports it, exit 2, nothing sent."""
    config = write_config(tmp_path, target(simulator, pools=("pool-a",), project_id="short"))
    result = probe(config)
    assert result.returncode == 2
    assert "targets[0].project_id: must be 32-36 characters, got 5" in result.stderr
    assert result.stdout == ""
    assert simulator.requests() == []


def test_help_lists_probe_and_its_flags() -> None:
    """``--help`` lists probe; ``probe --help`` offers --config.file, not a listen address."""
    top = run_cli("--help")
    assert re.search(r"^\s+probe\s+send each target one request", top.stdout, re.MULTILINE)
    own = run_cli("probe", "--help")
    assert own.returncode == 0
    assert "--config.file" in own.stdout
    assert "--web.listen-address" not in own.stdout
