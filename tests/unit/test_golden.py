"""Golden exposition: a fixed simulator state, polled over real sockets at a fixed time,
must render byte for byte as ``tests/golden/metrics.prom``.

Regenerate with ``pytest tests/unit/test_golden.py --update-golden`` and review the diff: the
file is the reviewed contract of metric names, labels, HELP texts and value formatting.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import structlog

from exporter import app, config
from exporter.simulator import Fault, Simulator, default_specs

GOLDEN = Path(__file__).parent.parent / "golden" / "metrics.prom"
PROJECT = "901de0901de0901de0901de0901de090"
REGION = "cn-north-4"
NOW = 1_800_000_000.0
AK, SK = "GOLDENACCESSKEY00000", "golden-secret-key"
DOMAIN, USER, PASSWORD = "golden-account", "monitor", "golden-password"


class FixedClock:
    """Time stands still: durations are 0 and timestamps are NOW."""

    def wall(self) -> float:
        return NOW

    def monotonic(self) -> float:
        return 0.0


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator(access_keys={AK: SK}, iam_users={(DOMAIN, USER): PASSWORD}, clock=lambda: NOW)
    sim.set_pool(
        PROJECT,
        "pool-gpu",
        {
            "train": {"Queue": 3, "Pending": 1, "Abnormal": 1, "Running": 5, "Failed": 2},
            "infer": {"Running": 4},
            "notebook": {"Running": 2, "Completed": 9},
        },
    )
    sim.set_pool(PROJECT, "pool-npu", {"train": {"Running": 8, "Suspended": 1}})
    sim.set_pool_info(
        PROJECT,
        "pool-gpu",
        display_name="Training (GPU)",
        resources={"modelarts.vm.gpu.t4": (4, 8), "modelarts.vm.cpu.8u": (2, 2)},
        nodes={
            "available": {"modelarts.vm.gpu.t4": 3, "modelarts.vm.cpu.8u": 2},
            "abnormal": {"modelarts.vm.gpu.t4": 1},
        },
        phase="Abnormal",
    )
    sim.set_pool_info(
        PROJECT,
        "pool-npu",
        display_name="Training (NPU)",
        pool_type="Logical",
        resources={"modelarts.bm.npu.arm.8snt9b3.d": (2, 4)},
        nodes={"available": {"modelarts.bm.npu.arm.8snt9b3.d": 1},
               "creating": {"modelarts.bm.npu.arm.8snt9b3.d": 1}},
    )  # fmt: skip
    # Discovered and shown, but a pool being created has no jobs to poll.
    sim.set_pool_info(PROJECT, "pool-new", phase="Creating", nodes={})
    # Listed by ListPools, left out by discovery.exclude.
    sim.set_pool_info(PROJECT, "pool-scratch-test")
    for job_type in ("train", "inference"):
        sim.set_specs(PROJECT, job_type, default_specs(job_type))
    with sim:
        yield sim


def exposition(endpoint: str, credentials: Mapping[str, object]) -> str:
    cfg = config.parse(
        {
            "poll_interval": "60s",
            "targets": [
                {
                    "project_id": PROJECT,
                    "region": REGION,
                    "endpoint": endpoint,
                    "iam_endpoint": endpoint,
                    # pool-gpu is also discovered: it is polled once.
                    "pools": ["pool-gpu", "pool-gone"],
                    "discovery": {"include": ["pool-.*"], "exclude": [".*-test"]},
                    "resource_specs": {"job_types": ["train", "inference"]},
                    "credentials": credentials,
                }
            ],
        },
        environ={},
    )
    exporter = app.build(cfg, structlog.wrap_logger(structlog.ReturnLogger()), FixedClock())

    async def one_cycle() -> str:
        try:
            await exporter.poller.run_cycle()
        finally:
            await exporter.close()
        return exporter.cache.current().text.plain.decode()

    text = asyncio.run(one_cycle())
    # The only value that depends on the machine, not on the exporter.
    return re.sub(r'python_version="[^"]*"', 'python_version="X.Y.Z"', text)


def check(text: str, request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--update-golden"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


class TestGolden:
    def test_aksk_exposition_matches_golden(
        self, simulator: Simulator, request: pytest.FixtureRequest
    ) -> None:
        """Polling with a signed AK/SK renders exactly the golden file."""
        creds = {"access_key": AK, "secret_key": SK}
        check(exposition(simulator.url, creds), request)

    @pytest.mark.parametrize("variant", ["statics", "string_counts", "sparse"])
    def test_documented_variants_render_the_same_bytes(
        self, simulator: Simulator, variant: str
    ) -> None:
        """The 'statics' edition, string counts, and answers that leave out zero statuses
        and job types without jobs all give exactly the golden exposition."""
        simulator.inject(Fault(path_contains="/workloads", variant=variant))
        creds = {"access_key": AK, "secret_key": SK}
        assert exposition(simulator.url, creds) == GOLDEN.read_text()
        served = [r for r in simulator.requests() if r.path.endswith("/workloads")]
        assert len(served) == 3

    def test_iam_password_exposition_matches_golden(self, simulator: Simulator) -> None:
        """Polling with an IAM password token renders the same bytes plus the IAM request
        counts; one token was fetched."""
        creds = {"type": "password", "user": USER, "password": PASSWORD, "domain": DOMAIN}
        lines = exposition(simulator.url, creds).splitlines(keepends=True)
        iam = [line for line in lines if 'api="iam_tokens"' in line]
        assert iam == [
            f'modelarts_api_requests_total{{api="iam_tokens",code="{code}",'
            f'project_id="{PROJECT}",region="{REGION}"}} {value}\n'
            for code, value in (("201", "1.0"), ("401", "0.0"), ("403", "0.0"), ("429", "0.0"))
        ]
        # The token's expiry: the simulator's clock plus its 24 h token lifetime.
        expiry = [line for line in lines if line.startswith("modelarts_credentials_expiry_")]
        assert expiry == [
            "modelarts_credentials_expiry_timestamp_seconds"
            f'{{project_id="{PROJECT}",region="{REGION}"}} {NOW + 86400:.8g}\n'
        ]
        served = [line for line in lines if line not in iam and line not in expiry]
        assert "".join(served) == GOLDEN.read_text()
        token_requests = [r for r in simulator.requests() if r.path == "/v3/auth/tokens"]
        assert len(token_requests) == 1
