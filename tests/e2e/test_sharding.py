"""Sharding: which exporter polls which item, the flags that say so, and the union proof.

The union test runs the real thing: one simulator, three ``modelarts-exporter`` processes with
``--shard=0..2 --total-shards=3`` and one unsharded process. The three shards' data series
together must be exactly the unsharded exporter's, none of them served twice.
"""

from __future__ import annotations

import asyncio
import doctest
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from exporter import app, cli, config, sharding, wiring
from exporter.models import Api, ItemKey, Snapshot
from exporter.sharding import UNSHARDED, Shard, ordinal_from_hostname, shard_of
from exporter.simulator import Simulator, default_specs
from tests.support.processes import ExporterProcess, start_exporter
from tests.support.promtext import Samples, series, value

PROJECT = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
OTHER = "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b"
AK = "SHARDACCESSKEY000000"
SK = "shard-sentinel-secret-key-0123456789"


def pools(count: int) -> list[str]:
    return [f"pool-{i:04d}" for i in range(count)]


def workload(project_id: str, pool: str) -> ItemKey:
    return ItemKey(project_id, Api.WORKLOAD_STATISTICS, pool)


def specs(project_id: str, job_type: str) -> ItemKey:
    return ItemKey(project_id, Api.RESOURCE_SPECS, job_type)


def owners(item: ItemKey, total: int) -> list[int]:
    return [i for i in range(total) if Shard(i, total).owns(item)]


#: (project, pool, total) -> shard, as documented: SHA-256, first 8 bytes big-endian, mod total.
ASSIGNMENT_SCRIPT = """
import json, sys
from exporter.sharding import shard_of
cases = json.load(sys.stdin)
print(json.dumps([shard_of(p, pool, n) for p, pool, n in cases]))
"""


class TestAssignment:
    @pytest.mark.parametrize("total", range(1, 9))
    def test_every_pool_belongs_to_exactly_one_shard(self, total: int) -> None:
        """For 1 to 8 shards, each of 500 pools (in two projects) has exactly one owner."""
        for project in (PROJECT, OTHER):
            for pool in pools(250):
                assert len(owners(workload(project, pool), total)) == 1, (project, pool)

    @pytest.mark.parametrize("total", range(1, 9))
    def test_resource_specs_belong_to_shard_0(self, total: int) -> None:
        """A job type's resource specs are polled by shard 0 and no other."""
        for job_type in ("train", "inference", "anything-else"):
            assert owners(specs(PROJECT, job_type), total) == [0]

    def test_the_documented_hash(self) -> None:
        """The shard is the first 8 bytes of SHA-256("project/pool"), big-endian, mod n."""
        for pool in pools(50):
            digest = hashlib.sha256(f"{PROJECT}/{pool}".encode()).digest()
            for total in range(1, 9):
                assert shard_of(PROJECT, pool, total) == int.from_bytes(digest[:8], "big") % total

    def test_pinned_assignments(self) -> None:
        """Known answers, so that no refactoring can silently move pools between shards."""
        project = "0123456789abcdef0123456789abcdef"
        assert [shard_of(project, p, 3) for p in ("pool-7d3ac4e1", "pool-c4ca4238")] == [1, 0]
        assert shard_of(project, "pool-eccbc87e", 3) == 2
        assert [shard_of(PROJECT, "pool-0000", n) for n in (1, 2, 5, 8)] == [0, 0, 3, 6]

    def test_stable_across_processes(self) -> None:
        """Other interpreters with other hash seeds compute the same shards (no hash())."""
        cases = [(project, pool, n) for project in (PROJECT, OTHER) for pool in pools(40)
                 for n in (2, 3, 7)]  # fmt: skip
        here = [shard_of(p, pool, n) for p, pool, n in cases]
        for seed in ("0", "1", "12345"):
            result = subprocess.run(
                [sys.executable, "-c", ASSIGNMENT_SCRIPT],
                input=json.dumps(cases),
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONHASHSEED": seed},
                timeout=30,
                check=True,
            )
            assert json.loads(result.stdout) == here, f"PYTHONHASHSEED={seed}"

    @pytest.mark.parametrize("total", range(2, 9))
    def test_distribution_is_roughly_even(self, total: int) -> None:
        """Over 500 pools every shard gets within 35% of an equal share."""
        counts = Counter(
            shard_of(project, pool, total) for project in (PROJECT, OTHER) for pool in pools(250)
        )
        share = 500 / total
        assert sorted(counts) == list(range(total))
        assert all(0.65 * share <= c <= 1.35 * share for c in counts.values()), counts

    @pytest.mark.parametrize(
        ("index", "total"), [(3, 3), (-1, 3), (0, 0), (1, 1), (0, -2)]
    )  # fmt: skip
    def test_impossible_shards_are_refused(self, index: int, total: int) -> None:
        """A shard outside 0..total-1, or fewer than one shard, is a ValueError."""
        with pytest.raises(ValueError, match="shard"):
            Shard(index, total)

    def test_unsharded_owns_everything(self) -> None:
        """The default shard (0 of 1) polls every item."""
        assert Shard() == UNSHARDED == Shard(0, 1)
        assert all(UNSHARDED.owns(workload(PROJECT, p)) for p in pools(100))
        assert UNSHARDED.owns(specs(PROJECT, "train"))

    def test_module_example_holds(self) -> None:
        """The example in the module docstring runs as written."""
        result = doctest.testmod(sharding)
        assert result.failed == 0
        assert result.attempted >= 5


class TestHostname:
    @pytest.mark.parametrize(
        ("hostname", "ordinal"),
        [
            ("modelarts-exporter-0", 0),
            ("modelarts-exporter-2", 2),
            ("modelarts-exporter-12", 12),
            ("x-7", 7),
            ("modelarts-exporter-1.modelarts-exporter.modelarts.svc.cluster.local", 1),
        ],
    )
    def test_ordinal(self, hostname: str, ordinal: int) -> None:
        """The trailing -<ordinal> of the first DNS label is the shard."""
        assert ordinal_from_hostname(hostname) == ordinal

    @pytest.mark.parametrize(
        "hostname",
        ["modelarts-exporter", "vm", "", "-3", "exporter-", "exporter-2a", "exporter2",
         "exporter-x.example-3"],
    )  # fmt: skip
    def test_no_ordinal(self, hostname: str) -> None:
        """A name that does not end in -<digits> is refused, naming the expected form."""
        with pytest.raises(ValueError, match=r"does not end in -<ordinal>"):
            ordinal_from_hostname(hostname)


def config_text(endpoint: str, interval: str = "30s") -> str:
    return f"""
poll_interval: {interval}
jitter: 0
timeout: 2s
retry: {{max_attempts: 2, initial_backoff: 0.05s, max_backoff: 0.2s}}
targets:
  - project_id: "{PROJECT}"
    region: cn-north-4
    endpoint: {endpoint}
    pools: [{", ".join(pools(20))}]
    resource_specs:
      job_types: [train, inference]
  - project_id: "{OTHER}"
    region: cn-north-4
    endpoint: {endpoint}
    discovery:
      refresh_interval: {interval}
    resource_specs:
      job_types: [train, inference]
  - project_id: "{LONE}"
    region: cn-north-4
    endpoint: {endpoint}
    pools: [{LONE_POOL}]
"""


#: A third project with a single pool: only one of the three shards polls it at all.
LONE = "7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c"
LONE_POOL = "pool-lonely"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


class TestFlags:
    @pytest.mark.parametrize(
        ("flags", "message"),
        [
            (["--shard=3", "--total-shards=3"], "the shard must be between 0 and 2"),
            (["--shard=-1", "--total-shards=2"], "the shard must be between 0 and 1"),
            (["--shard=1"], "between 0 and 0 for 1 shard"),
            (["--total-shards=0"], "the number of shards must be at least 1"),
            (["--shard.from-hostname"], "--shard.from-hostname needs --total-shards"),
            (["--shard=1", "--shard.from-hostname", "--total-shards=2"], "not allowed with"),
            (["--shard=one"], "invalid int value"),
        ],
    )
    def test_bad_flags_are_usage_errors(
        self, tmp_path: Path, flags: list[str], message: str
    ) -> None:
        """Impossible shard flags exit 2 with a usage message, before the config is read."""
        result = run_cli(*flags, f"--config.file={tmp_path / 'missing.yaml'}")
        assert result.returncode == 2
        assert message in result.stderr
        assert "usage: modelarts-exporter" in result.stderr
        assert "invalid configuration" not in result.stderr

    def test_hostname_without_ordinal_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--shard.from-hostname on a host without -<ordinal> exits 2 and names the host."""
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["--shard.from-hostname", "--total-shards=3"], hostname=lambda: "build-vm")
        assert exit_info.value.code == 2
        stderr = capsys.readouterr().err
        assert "--shard.from-hostname: hostname 'build-vm' does not end in -<ordinal>" in stderr

    def test_hostname_ordinal_beyond_total_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Pod modelarts-exporter-3 with --total-shards=3 exits 2: replicas and shards differ."""
        with pytest.raises(SystemExit) as exit_info:
            cli.main(
                ["--shard.from-hostname", "--total-shards=3"],
                hostname=lambda: "modelarts-exporter-3",
            )
        assert exit_info.value.code == 2
        stderr = capsys.readouterr().err
        assert "hostname 'modelarts-exporter-3'" in stderr
        assert "the shard must be between 0 and 2 for 3 shard(s), got 3" in stderr

    def test_check_config_ignores_the_shard_flags(self, tmp_path: Path) -> None:
        """check-config validates the config whatever the shard flags say (even no ordinal)."""
        path = tmp_path / "config.yaml"
        path.write_text(config_text("http://127.0.0.1:9"))
        for flags in (["--shard=2", "--total-shards=3"], ["--shard.from-hostname"]):
            result = run_cli(*flags, "check-config", f"--config.file={path}")
            assert result.returncode == 0, result.stderr


class TestBuild:
    def test_a_target_without_owned_items_is_not_polled(self) -> None:
        """A shard that owns nothing of a target sends it no request and has no modelarts_up
        for its project; the shard that owns its pool polls it."""
        owner = shard_of(LONE, LONE_POOL, 3)
        with Simulator(access_keys={AK: SK}) as simulator:
            simulator.set_pool(LONE, LONE_POOL, {"train": {"Running": 1}})
            cfg = config.parse(
                {
                    "targets": [
                        {
                            "project_id": LONE,
                            "region": "cn-north-4",
                            "endpoint": simulator.url,
                            "pools": [LONE_POOL],
                            "credentials": {"access_key": AK, "secret_key": SK},
                        }
                    ]
                },
                environ={},
            )
            for index in range(3):
                simulator.clear_requests()
                exporter = app.build(
                    cfg, structlog.wrap_logger(structlog.ReturnLogger()), shard=Shard(index, 3)
                )

                async def cycle(built: app.Exporter = exporter) -> Snapshot:
                    try:
                        return await built.poller.run_cycle()
                    finally:
                        await built.close()

                snapshot = asyncio.run(cycle())
                polled = index == owner
                assert snapshot.up == (((LONE, True),) if polled else ())
                assert len(snapshot.items) == len(simulator.requests()) == int(polled)
                assert all(stats.cycles == 1 for _, stats in snapshot.cycles)

    def test_items_of_keeps_order_and_filters(self) -> None:
        """items_of gives the shard's pools, then (on shard 0) the job types, in config order."""
        cfg = config.parse(
            {
                "targets": [
                    {
                        "project_id": PROJECT,
                        "region": "cn-north-4",
                        "pools": pools(30),
                        "resource_specs": {"job_types": ["train", "inference"]},
                        "credentials": {"access_key": AK, "secret_key": SK},
                    }
                ]
            },
            environ={},
        )
        (target,) = cfg.targets
        everything = wiring.items_of(target)
        assert len(everything) == 32
        parts = [wiring.items_of(target, Shard(i, 4)) for i in range(4)]
        assert sorted(item for part in parts for item in part) == sorted(everything)
        for part in parts:
            assert part == [item for item in everything if item in part]
        assert [i.name for i in parts[0] if i.api is Api.RESOURCE_SPECS] == [
            "train",
            "inference",
        ]


# --- the union test ----------------------------------------------------------------------

#: Families whose series are data about ModelArts items: what sharding splits.
DATA_FAMILIES = {
    "modelarts_pool_jobs",
    "modelarts_pool_type_jobs",
    "modelarts_spec_no_resource",
    "modelarts_spec_info",
    "modelarts_spec_gpus",
    "modelarts_spec_cpu_cores",
    "modelarts_spec_memory_bytes",
    "modelarts_spec_max_nodes",
    "modelarts_spec_pricing_units",
    "modelarts_specs",
    "modelarts_pool_info",
    "modelarts_pool_phase",
    "modelarts_pool_nodes",
    "modelarts_pool_spec_nodes",
    "modelarts_pool_spec_max_nodes",
    "modelarts_poll_success",
    "modelarts_poll_last_error_info",
}
#: Per-process families: every exporter has its own (timings, counters, identity).
PER_PROCESS = {
    "modelarts_up",
    "modelarts_credentials_refused",
    "modelarts_credentials_last_reload_successful",
    "modelarts_credentials_expiry_timestamp_seconds",
    "modelarts_request_budget_rate",
    "modelarts_api_requests_total",
    "modelarts_poll_errors_total",
    "modelarts_poll_duration_seconds",
    "modelarts_poll_last_success_timestamp_seconds",
}
PER_PROCESS_PREFIXES = ("process_", "python_", "modelarts_exporter_")


def pool_counts(i: int) -> dict[str, dict[str, int]]:
    return {
        "train": {"Queue": i % 3, "Running": i, "Failed": i % 2},
        "infer": {"Running": 2 * i + 1, "Abnormal": i % 4},
        "notebook": {"Running": i % 5},
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ExporterProcess]]:
    """The simulator, three shards and one unsharded exporter, all ready."""
    workdir = tmp_path_factory.mktemp("sharding")
    simulator = Simulator(access_keys={AK: SK})
    for project, prefix in ((PROJECT, ""), (OTHER, "other-")):
        for i, pool in enumerate(pools(20)):
            simulator.set_pool(project, prefix + pool, pool_counts(i + len(prefix)))
        for job_type in ("train", "inference"):
            simulator.set_specs(project, job_type, default_specs(job_type))
    simulator.set_pool(LONE, LONE_POOL, pool_counts(7))
    # Discovered and shown by its owner, never polled for jobs.
    simulator.set_pool_info(OTHER, "other-being-created", phase="Creating")
    simulator.set_pool_info(OTHER, f"other-{pools(1)[0]}", display_name="GPU", phase="Abnormal")
    simulator.start()
    path = workdir / "config.yaml"
    path.write_text(config_text(simulator.url))
    env = {**os.environ, "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    runs = {f"shard{i}": [f"--shard={i}", "--total-shards=3"] for i in range(3)}
    runs["single"] = []
    fleet: dict[str, ExporterProcess] = {}
    try:
        for name, flags in runs.items():
            fleet[name] = start_exporter(path, workdir / f"{name}.log", env, *flags)
        for exporter in fleet.values():
            exporter.wait_ready()
        yield fleet
    finally:
        for exporter in fleet.values():
            exporter.kill()
        simulator.stop()


def family(name: str) -> str:
    """The family a sample name belongs to, classified as data or per-process."""
    if name in DATA_FAMILIES or name in PER_PROCESS or name.startswith(PER_PROCESS_PREFIXES):
        return name
    pytest.fail(f"sample {name} is neither a data nor a per-process family: classify it here")


def data(samples: Samples) -> Samples:
    """The data series. Discovery's own health (``api="pools"``) is per process: every shard
    asks ListPools itself and keeps the pools it owns."""
    return {
        key: v
        for key, v in samples.items()
        if family(key[0]) in DATA_FAMILIES and ("api", "pools") not in key[1]
    }


@pytest.mark.e2e
class TestUnion:
    def test_shards_together_serve_exactly_the_unsharded_series(
        self, fleet: dict[str, ExporterProcess]
    ) -> None:
        """Every data series of the unsharded exporter is served by exactly one of the three
        shards, with the same value, and the shards serve nothing else."""
        single = data(fleet["single"].scrape())
        shards = [data(fleet[f"shard{i}"].scrape()) for i in range(3)]
        served = Counter(key for shard in shards for key in shard)
        twice = sorted(key for key, times in served.items() if times > 1)
        assert twice == [], f"served by more than one shard: {twice[:5]}"
        assert set(served) == set(single)
        merged = {key: v for shard in shards for key, v in shard.items()}
        assert merged == single
        # The comparison covered every data family (but the last error: no poll failed),
        # and every shard had pools to poll.
        assert {name for name, _ in single} == DATA_FAMILIES - {"modelarts_poll_last_error_info"}
        for shard in shards:
            assert series(shard, "modelarts_pool_jobs"), "a shard polled no pool"
        # 41 pools x 3 job types x 9 statuses; 2 projects x 2 job types of specs.
        assert len(series(single, "modelarts_pool_jobs")) == 41 * 3 * 9
        assert len(series(single, "modelarts_specs")) == 4
        # OTHER's 20 pools and the one being created were discovered, each by one shard.
        assert len(series(single, "modelarts_pool_info")) == 21
        assert sum(bool(series(s, "modelarts_pool_info")) for s in shards) >= 2
        assert set(series(single, "modelarts_poll_success").values()) == {1.0}

    def test_specs_come_from_shard_0_only(self, fleet: dict[str, ExporterProcess]) -> None:
        """Shard 0 serves all resource-spec series; shards 1 and 2 none."""
        spec_names = {n for n in DATA_FAMILIES if n.startswith("modelarts_spec")}
        for i in range(3):
            names = {name for name, _ in data(fleet[f"shard{i}"].scrape())}
            assert (names >= spec_names) if i == 0 else not (names & spec_names), i
            resource = series(
                fleet[f"shard{i}"].scrape(), "modelarts_poll_success", api="resource_specs"
            )
            assert len(resource) == (4 if i == 0 else 0)

    def test_each_exporter_says_which_shard_it_is(self, fleet: dict[str, ExporterProcess]) -> None:
        """modelarts_exporter_shard and the exporter_started log name each one's shard."""
        expected = {f"shard{i}": (i, 3) for i in range(3)} | {"single": (0, 1)}
        for name, (index, total) in expected.items():
            shard = series(fleet[name].scrape(), "modelarts_exporter_shard")
            labels = frozenset({("shard", str(index)), ("total_shards", str(total))})
            assert shard == {labels: 1.0}, name
            started = fleet[name].started()
            assert (started["shard"], started["total_shards"]) == (index, total)

    def test_up_only_where_a_shard_polls_the_project(
        self, fleet: dict[str, ExporterProcess]
    ) -> None:
        """modelarts_up is 1 on every shard polling a project; the lone pool's project has
        modelarts_up on its owner only."""
        owner = shard_of(LONE, LONE_POOL, 3)
        for i in range(3):
            samples = fleet[f"shard{i}"].scrape()
            assert value(samples, "modelarts_up", project_id=PROJECT) == 1.0
            assert value(samples, "modelarts_up", project_id=OTHER) == 1.0
            lone = value(samples, "modelarts_up", project_id=LONE)
            assert lone == (1.0 if i == owner else None), i
            assert not series(samples, "modelarts_poll_errors_total")
        assert value(fleet["single"].scrape(), "modelarts_up", project_id=LONE) == 1.0
