"""``ModelArtsClient`` over ``httpx.MockTransport``: paths, error mapping, retries, limits.

Every dependency is injected: the transport, a recording ``sleep`` (so retries run at once),
a fixed ``clock``, an ``rng`` and an ``observe`` that records calls. Expected values are
written by hand from ``docs/modelarts-api.md``. ListPools is also called
over real sockets, signed with AK/SK, against ``exporter.simulator.Simulator``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from exporter.auth import AkSkAuth
from exporter.client import ModelArtsClient, Observer, Sleep, backoff_delay, parse_retry_after
from exporter.config import AkSkCredentials, RetryPolicy, Secret
from exporter.errors import (
    ApiError,
    AuthError,
    ErrorDetail,
    NotFoundError,
    ResponseError,
    ThrottledError,
    TransportError,
)
from exporter.models import (
    Api,
    CallLimits,
    JobTypeStatistics,
    Pool,
    PoolFlavor,
    PoolList,
    ResourceSpecs,
    WorkloadStatistics,
)
from exporter.simulator import Fault, Simulator
from tests.support.samples import CPU_SPEC, DOCUMENTED_STATUSES, GPU_SPEC, SPECS_SAMPLE

PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"  # 32 characters, as documented
ENDPOINT = "https://modelarts.cn-north-4.myhuaweicloud.com"
POLICY = RetryPolicy(max_attempts=3, initial_backoff=0.5, max_backoff=30)
# 2015-10-21 07:28:00 UTC as Unix time.
OCT_21_2015_0728_UTC = 1_445_412_480.0

WORKLOAD_BODY = {
    "statistics": {
        "total": 1,
        "items": [{"type": "train", "total": 3, "status": {"Running": 2, "Pending": 1}}],
    }
}


def documented(**counts: float) -> tuple[tuple[str, float], ...]:
    """The nine documented statuses in their documented order, 0 unless given."""
    return tuple((name, counts.get(name, 0.0)) for name in DOCUMENTED_STATUSES)


#: WORKLOAD_BODY as the client returns it: parsed, and zero-filled (parse.zero_filled).
WORKLOAD = WorkloadStatistics(
    job_types=(
        JobTypeStatistics("train", 3.0, documented(running=2.0, pending=1.0)),
        JobTypeStatistics("infer", 0.0, documented()),
        JobTypeStatistics("notebook", 0.0, documented()),
    )
)
SPECS_BODY = json.loads(SPECS_SAMPLE)
SPECS = ResourceSpecs(total_count=2.0, specs=(CPU_SPEC, GPU_SPEC))
T4 = "modelarts.vm.gpu.t4"
POOLS_BODY = {
    "kind": "PoolList",
    "items": [
        {
            "metadata": {
                "name": "pool-a",
                "labels": {"os.modelarts/name": "Prod A", "os.modelarts/workspace.id": "0"},
            },
            "spec": {"type": "Dedicate", "resources": [{"flavor": T4, "count": 2, "maxCount": 4}]},
            "status": {
                "phase": "Running",
                "resources": {"available": [{"flavor": T4, "count": 2}]},
            },
        }
    ],
}
# name, display name, type, workspace, phase, flavors (count, maxCount), nodes
PROD_A = ("pool-a", "Prod A", "Dedicate", "0", "Running")
POOLS = PoolList((Pool(*PROD_A, (PoolFlavor(T4, 2.0, 4.0),), ((T4, "available", 2.0),)),))
AUTH_FAILURE = {
    "error_code": "APIGW.0301",
    "error_msg": "Incorrect IAM authentication information: verify aksk signature fail",
}

Reply = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]
Call = Callable[[ModelArtsClient], Awaitable[Any]]


class FixedRandom(random.Random):
    """A ``Random`` whose ``random()`` is always ``fraction``: ``uniform(a, b)`` is then exact."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


def reply(
    status: int,
    body: object = None,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """A handler step answering ``status`` with a JSON ``body`` (or raw ``content``)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if content is not None:
            return httpx.Response(status, content=content, headers=headers)
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return answer


def fail(kind: type[httpx.TransportError]) -> Reply:
    """A handler step raising the httpx transport error ``kind``."""

    def answer(request: httpx.Request) -> httpx.Response:
        raise kind("simulated", request=request)

    return answer


def modelarts_client(
    http: httpx.AsyncClient,
    observe: Observer,
    *,
    endpoint: str = ENDPOINT,
    timeout: float = 5.0,
    max_body_bytes: int = 1 << 20,
    clock: Callable[[], float] = time.time,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> ModelArtsClient:
    """A client of ``PROJECT`` with the retry policy ``POLICY``."""
    return ModelArtsClient(
        http,
        endpoint=endpoint,
        project_id=PROJECT,
        timeout=timeout,
        retry=POLICY,
        max_body_bytes=max_body_bytes,
        observe=observe,
        clock=clock,
        sleep=sleep,
        rng=rng,
    )


class Harness:
    """Runs one client call against scripted answers and records what happened."""

    def __init__(
        self,
        *steps: Reply,
        timeout: float = 5.0,
        max_body_bytes: int = 1 << 20,
        clock: float = OCT_21_2015_0728_UTC - 3.0,
        rng: random.Random | None = None,
    ) -> None:
        self.steps = list(steps)
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.now = clock
        self.rng = rng if rng is not None else random.Random(7)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.observed: list[tuple[Api, str]] = []

    async def _handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert len(self.requests) <= len(self.steps), "more requests than scripted answers"
        answer = self.steps[len(self.requests) - 1](request)
        if isinstance(answer, httpx.Response):
            return answer
        return await answer

    async def _sleep(self, delay: float) -> None:
        self.sleeps.append(delay)

    def _observe(self, api: Api, status: str) -> None:
        self.observed.append((api, status))

    def run(self, call: Call) -> Any:
        async def main() -> Any:
            transport = httpx.MockTransport(self._handler)
            async with httpx.AsyncClient(transport=transport) as http:
                client = modelarts_client(
                    http,
                    self._observe,
                    timeout=self.timeout,
                    max_body_bytes=self.max_body_bytes,
                    clock=lambda: self.now,
                    sleep=self._sleep,
                    rng=self.rng,
                )
                return await call(client)

        return asyncio.run(main())


def stats(client: ModelArtsClient) -> Awaitable[WorkloadStatistics]:
    return client.workload_statistics("pool-a")


def specs(client: ModelArtsClient) -> Awaitable[ResourceSpecs]:
    return client.resource_specs("train")


def pools(client: ModelArtsClient) -> Awaitable[PoolList]:
    return client.list_pools()


class RecordingStream(httpx.AsyncByteStream):
    """A body of ``chunks`` pieces of ``size`` bytes that counts how many were read."""

    def __init__(self, chunks: int, size: int) -> None:
        self.chunks = chunks
        self.size = size
        self.served = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.served += 1
            yield b"x" * self.size

    async def aclose(self) -> None:
        self.closed = True


class TestRequests:
    def test_workload_statistics_path(self) -> None:
        """ShowWorkloadStatistics is a GET of /v2/{project_id}/statistics/pools/{pool}/workloads."""
        harness = Harness(reply(200, WORKLOAD_BODY))
        harness.run(stats)
        (request,) = harness.requests
        assert request.method == "GET"
        assert request.url.host == "modelarts.cn-north-4.myhuaweicloud.com"
        assert request.url.raw_path == (
            b"/v2/0a1b2c3d4e5f60718293a4b5c6d7e8f9/statistics/pools/pool-a/workloads"
        )

    def test_pool_name_is_one_encoded_segment(self) -> None:
        """A pool name with a space and a slash is percent-encoded into a single path segment."""
        harness = Harness(reply(200, WORKLOAD_BODY))
        harness.run(lambda c: c.workload_statistics("gpu pool/team-a"))
        assert harness.requests[0].url.raw_path == (
            b"/v2/0a1b2c3d4e5f60718293a4b5c6d7e8f9/statistics/pools/gpu%20pool%2Fteam-a/workloads"
        )

    def test_resource_specs_path(self) -> None:
        """QueryJobResourceSpecs is a GET of /v1/{project_id}/job/resource-specs?job_type=train."""
        harness = Harness(reply(200, SPECS_BODY))
        harness.run(specs)
        (request,) = harness.requests
        assert request.method == "GET"
        assert request.url.raw_path == (
            b"/v1/0a1b2c3d4e5f60718293a4b5c6d7e8f9/job/resource-specs?job_type=train"
        )


class TestSuccess:
    def test_workload_statistics(self) -> None:
        """A 200 answer becomes the parsed model, zero-filled, observed once as "200"."""
        harness = Harness(reply(200, WORKLOAD_BODY))
        assert harness.run(stats) == WORKLOAD
        assert harness.observed == [(Api.WORKLOAD_STATISTICS, "200")]
        assert harness.sleeps == []

    def test_resource_specs(self) -> None:
        """A 200 resource-specs answer becomes the parsed model, observed under its own API."""
        harness = Harness(reply(200, SPECS_BODY))
        assert harness.run(specs) == SPECS
        assert harness.observed == [(Api.RESOURCE_SPECS, "200")]


class TestClientErrors:
    @pytest.mark.parametrize("status", [401, 403])
    def test_auth_failure_is_never_retried(self, status: int) -> None:
        """401/403 raise AuthError after exactly one request, never sleeping, with all details."""
        harness = Harness(
            reply(status, AUTH_FAILURE, headers={"X-Request-Id": "req-auth-1"}),
            reply(200, WORKLOAD_BODY),
        )
        with pytest.raises(AuthError) as info:
            harness.run(stats)
        detail = info.value.detail
        assert detail.http_status == status
        assert detail.error_code == "APIGW.0301"
        assert info.value.code == "APIGW.0301"
        assert detail.message == (
            "Incorrect IAM authentication information: verify aksk signature fail"
        )
        assert detail.request_id == "req-auth-1"
        assert len(harness.requests) == 1
        assert harness.sleeps == []
        assert harness.observed == [(Api.WORKLOAD_STATISTICS, str(status))]

    def test_iam_shaped_auth_failure(self) -> None:
        """An IAM-shaped 401 body keeps its message; its numeric code is not used as a label."""
        body = {"error": {"code": 401, "message": "The request you have made requires auth."}}
        harness = Harness(reply(401, body))
        with pytest.raises(AuthError) as info:
            harness.run(specs)
        assert info.value.detail.error_code is None
        assert info.value.code == "http_error"
        assert info.value.detail.message == "The request you have made requires auth."
        assert len(harness.requests) == 1

    def test_pool_not_found(self) -> None:
        """404 ModelArts.50015001 raises NotFoundError with pool_gone, after one request."""
        body = {"error_code": "ModelArts.50015001", "error_msg": "Pool pool-a not found."}
        harness = Harness(reply(404, body, headers={"X-Request-Id": "req-404"}))
        with pytest.raises(NotFoundError) as info:
            harness.run(stats)
        assert info.value.pool_gone is True
        assert info.value.detail.error_code == "ModelArts.50015001"
        assert info.value.detail.message == "Pool pool-a not found."
        assert info.value.detail.request_id == "req-404"
        assert len(harness.requests) == 1
        assert harness.sleeps == []

    def test_wrong_path_is_not_pool_gone(self) -> None:
        """404 APIGW.0101 (wrong host or path) raises NotFoundError without pool_gone."""
        body = {"error_code": "APIGW.0101", "error_msg": "The API does not exist"}
        harness = Harness(reply(404, body))
        with pytest.raises(NotFoundError) as info:
            harness.run(stats)
        assert info.value.pool_gone is False
        assert info.value.code == "APIGW.0101"
        assert len(harness.requests) == 1

    def test_bad_request_is_not_retried(self) -> None:
        """400 raises a plain ApiError with its code after one request."""
        body = {"error_code": "ModelArts.50004000", "error_msg": "Bad request."}
        harness = Harness(reply(400, body), reply(200, WORKLOAD_BODY))
        with pytest.raises(ApiError) as info:
            harness.run(stats)
        assert type(info.value) is ApiError
        assert info.value.detail.http_status == 400
        assert info.value.code == "ModelArts.50004000"
        assert info.value.detail.message == "Bad request."
        assert len(harness.requests) == 1
        assert harness.sleeps == []

    def test_is_success_false(self) -> None:
        """``is_success: false`` on a 200 raises ApiError with the ModelArts code, not retried."""
        body = {
            "is_success": False,
            "error_message": "Error string",
            "error_code": "ModelArts.0105",
        }
        harness = Harness(
            reply(200, body, headers={"X-Request-Id": "req-spec"}), reply(200, SPECS_BODY)
        )
        with pytest.raises(ApiError) as info:
            harness.run(specs)
        assert type(info.value) is ApiError
        assert info.value.detail == ErrorDetail(
            http_status=200,
            error_code="ModelArts.0105",
            message="Error string",
            request_id="req-spec",
        )
        assert len(harness.requests) == 1
        assert harness.sleeps == []
        assert harness.observed == [(Api.RESOURCE_SPECS, "200")]


class TestServerErrors:
    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_retried_up_to_max_attempts(self, status: int) -> None:
        """5xx is tried max_attempts (3) times, then raised as ApiError with that status."""
        harness = Harness(*[reply(status, {"error_msg": "busy"})] * 3)
        with pytest.raises(ApiError) as info:
            harness.run(stats)
        assert type(info.value) is ApiError
        assert info.value.detail.http_status == status
        assert len(harness.requests) == 3
        assert len(harness.sleeps) == 2
        assert harness.observed == [(Api.WORKLOAD_STATISTICS, str(status))] * 3

    def test_success_on_second_attempt(self) -> None:
        """A 503 followed by a 200 returns the data after one sleep."""
        harness = Harness(reply(503), reply(200, WORKLOAD_BODY))
        assert harness.run(stats) == WORKLOAD
        assert len(harness.requests) == 2
        assert len(harness.sleeps) == 1
        assert harness.observed == [
            (Api.WORKLOAD_STATISTICS, "503"),
            (Api.WORKLOAD_STATISTICS, "200"),
        ]

    def test_non_json_error_body(self) -> None:
        """A 502 with an HTML body raises ApiError with the generic code and an HTTP message."""
        page = b"<html><body>502 Bad Gateway</body></html>"
        harness = Harness(*[reply(502, content=page)] * 3)
        with pytest.raises(ApiError) as info:
            harness.run(stats)
        assert info.value.code == "http_error"
        assert info.value.detail.message == "HTTP 502"

    @pytest.mark.parametrize("seed", range(20))
    def test_backoff_within_full_jitter_bounds(self, seed: int) -> None:
        """With any random source, the sleeps lie in [0, 0.5] then [0, 1.0]."""
        harness = Harness(*[reply(500)] * 3, rng=random.Random(seed))
        with pytest.raises(ApiError):
            harness.run(stats)
        first, second = harness.sleeps
        assert 0 <= first <= 0.5
        assert 0 <= second <= 1.0

    @pytest.mark.parametrize(
        ("fraction", "expected"), [(1.0, [0.5, 1.0]), (0.0, [0.0, 0.0]), (0.5, [0.25, 0.5])]
    )
    def test_backoff_is_exponential(self, fraction: float, expected: list[float]) -> None:
        """The sleeps are a random fraction of 0.5 s, then of 1.0 s (doubling per attempt)."""
        harness = Harness(*[reply(500)] * 3, rng=FixedRandom(fraction))
        with pytest.raises(ApiError):
            harness.run(stats)
        assert harness.sleeps == pytest.approx(expected)


class TestThrottling:
    def test_retry_after_seconds(self) -> None:
        """429 with ``Retry-After: 2`` sleeps between 2 and 2.2 s, then retries."""
        harness = Harness(
            reply(429, {"error_code": "APIGW.0308"}, headers={"Retry-After": "2"}),
            reply(200, WORKLOAD_BODY),
        )
        assert harness.run(stats) == WORKLOAD
        (delay,) = harness.sleeps
        assert 2.0 <= delay <= 2.2
        assert len(harness.requests) == 2

    @pytest.mark.parametrize(("fraction", "expected"), [(0.0, 2.0), (1.0, 2.2)])
    def test_retry_after_jitter_edges(self, fraction: float, expected: float) -> None:
        """The Retry-After jitter adds between 0 and 10 % to the asked delay."""
        harness = Harness(
            reply(429, headers={"Retry-After": "2"}),
            reply(200, WORKLOAD_BODY),
            rng=FixedRandom(fraction),
        )
        harness.run(stats)
        assert harness.sleeps == [pytest.approx(expected)]

    def test_retry_after_http_date(self) -> None:
        """An HTTP-date Retry-After counts from the injected clock (3 s before the date)."""
        harness = Harness(
            reply(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
            reply(200, WORKLOAD_BODY),
            clock=OCT_21_2015_0728_UTC - 3.0,
            rng=FixedRandom(0.0),
        )
        assert harness.run(stats) == WORKLOAD
        assert harness.sleeps == [pytest.approx(3.0)]

    @pytest.mark.parametrize(("fraction", "expected"), [(0.0, 2.0), (1.0, 5.0)])
    def test_no_retry_after(self, fraction: float, expected: float) -> None:
        """429 without Retry-After sleeps between 2 and 5 s before the second attempt."""
        harness = Harness(reply(429), reply(200, WORKLOAD_BODY), rng=FixedRandom(fraction))
        harness.run(stats)
        assert harness.sleeps == [pytest.approx(expected)]

    def test_no_retry_after_random(self) -> None:
        """With a real random source, the 429 backoff without Retry-After lies in [2, 5]."""
        harness = Harness(reply(429), reply(200, WORKLOAD_BODY), rng=random.Random(3))
        harness.run(stats)
        (delay,) = harness.sleeps
        assert 2.0 <= delay <= 5.0

    def test_retry_after_beyond_max_backoff(self) -> None:
        """Retry-After above max_backoff gives up after one request with retry_after set."""
        harness = Harness(
            reply(429, {"error_code": "APIGW.0308"}, headers={"Retry-After": "60"}),
            reply(200, WORKLOAD_BODY),
        )
        with pytest.raises(ThrottledError) as info:
            harness.run(stats)
        assert info.value.retry_after == 60.0
        assert info.value.detail.http_status == 429
        assert info.value.code == "APIGW.0308"
        assert len(harness.requests) == 1
        assert harness.sleeps == []

    def test_throttled_every_attempt(self) -> None:
        """429 on every attempt raises ThrottledError after max_attempts requests."""
        harness = Harness(*[reply(429, headers={"Retry-After": "1"})] * 3)
        with pytest.raises(ThrottledError) as info:
            harness.run(stats)
        assert info.value.retry_after == 1.0
        assert len(harness.requests) == 3
        assert len(harness.sleeps) == 2


class TestTransportErrors:
    def test_connect_error(self) -> None:
        """A refused connection is retried, then raised as TransportError connect_error."""
        harness = Harness(*[fail(httpx.ConnectError)] * 3)
        with pytest.raises(TransportError) as info:
            harness.run(stats)
        assert info.value.code == "connect_error"
        assert info.value.detail.http_status is None
        assert len(harness.requests) == 3
        assert len(harness.sleeps) == 2
        assert harness.observed == [(Api.WORKLOAD_STATISTICS, "none")] * 3

    def test_connect_error_then_success(self) -> None:
        """A connection error followed by a 200 returns the data."""
        harness = Harness(fail(httpx.ConnectError), reply(200, SPECS_BODY))
        assert harness.run(specs) == SPECS
        assert harness.observed == [(Api.RESOURCE_SPECS, "none"), (Api.RESOURCE_SPECS, "200")]

    def test_read_timeout(self) -> None:
        """An httpx ReadTimeout is raised as TransportError timeout after all attempts."""
        harness = Harness(*[fail(httpx.ReadTimeout)] * 3)
        with pytest.raises(TransportError) as info:
            harness.run(stats)
        assert info.value.code == "timeout"
        assert len(harness.requests) == 3
        assert harness.observed == [(Api.WORKLOAD_STATISTICS, "none")] * 3

    def test_other_transport_error(self) -> None:
        """Any other httpx transport failure is TransportError transport_error."""
        harness = Harness(*[fail(httpx.RemoteProtocolError)] * 3)
        with pytest.raises(TransportError) as info:
            harness.run(stats)
        assert info.value.code == "transport_error"

    def test_slow_answer_hits_timeout(self) -> None:
        """A server slower than ``timeout`` gives TransportError timeout, observed as "none"."""

        async def slow(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(1)
            return httpx.Response(200, json=WORKLOAD_BODY)

        harness = Harness(slow, slow, slow, timeout=0.05)
        with pytest.raises(TransportError) as info:
            harness.run(stats)
        assert info.value.code == "timeout"
        assert len(harness.requests) == 3
        assert harness.observed == [(Api.WORKLOAD_STATISTICS, "none")] * 3


class TestBodyLimits:
    def test_declared_length_over_limit(self) -> None:
        """A Content-Length above max_body_bytes is refused without reading the body."""
        body = RecordingStream(chunks=4, size=100)
        harness = Harness(
            lambda request: httpx.Response(
                200, headers={"Content-Length": "400", "X-Request-Id": "req-big"}, stream=body
            ),
            max_body_bytes=399,
        )
        with pytest.raises(ResponseError) as info:
            harness.run(stats)
        assert info.value.code == "response_too_large"
        assert info.value.detail.http_status == 200
        assert info.value.detail.request_id == "req-big"
        assert body.served == 0
        assert len(harness.requests) == 1
        assert harness.observed == [(Api.WORKLOAD_STATISTICS, "200")]

    def test_body_at_limit_is_accepted(self) -> None:
        """A body exactly max_body_bytes long is read and parsed."""
        raw = json.dumps(WORKLOAD_BODY).encode()
        harness = Harness(reply(200, content=raw), max_body_bytes=len(raw))
        assert harness.run(stats) == WORKLOAD

    def test_body_one_byte_over_limit(self) -> None:
        """A body one byte longer than max_body_bytes is refused."""
        raw = json.dumps(WORKLOAD_BODY).encode()
        harness = Harness(reply(200, content=raw), max_body_bytes=len(raw) - 1)
        with pytest.raises(ResponseError) as info:
            harness.run(stats)
        assert info.value.code == "response_too_large"

    def test_streamed_body_over_limit(self) -> None:
        """A body without Content-Length is cut off once past the limit, not read to the end."""
        body = RecordingStream(chunks=1000, size=1024)
        harness = Harness(lambda request: httpx.Response(200, stream=body), max_body_bytes=4096)
        with pytest.raises(ResponseError) as info:
            harness.run(stats)
        assert info.value.code == "response_too_large"
        # 4096 bytes fit in four 1024-byte chunks; the fifth passes the limit.
        assert body.served == 5
        assert body.closed
        assert len(harness.requests) == 1
        assert harness.observed == [(Api.WORKLOAD_STATISTICS, "200")]

    def test_large_error_body(self) -> None:
        """An oversized error body is read no further than the limit, and the status
        decides what it is: a 503 (retried), not response_too_large."""
        bodies = [RecordingStream(chunks=100, size=1024) for _ in range(3)]
        harness = Harness(
            *(lambda request, b=b: httpx.Response(503, stream=b) for b in bodies),
            max_body_bytes=2048,
        )
        with pytest.raises(ApiError) as info:
            harness.run(stats)
        assert (info.value.code, info.value.detail.http_status) == ("http_error", 503)
        assert [b.served for b in bodies] == [3, 3, 3]
        assert len(harness.requests) == 3

    @pytest.mark.parametrize(
        ("headers", "content"),
        [
            pytest.param({"Content-Encoding": "br"}, b"\x1b\x00", id="unsupported-encoding"),
            pytest.param({"Content-Encoding": "gzip"}, b"", id="empty-gzip"),
            pytest.param({"Content-Encoding": "gzip"}, b"not gzip", id="broken-gzip"),
            pytest.param({}, b"x" * 4096, id="too-large"),
        ],
    )
    def test_a_401_is_a_refusal_whatever_its_body(
        self, headers: dict[str, str], content: bytes
    ) -> None:
        """A 401 whose body cannot be read (an encoding not read, a broken or empty gzip,
        too large) is still a refusal, AuthError, never retried: read as a body error, it
        would let the poller send more requests with a refused key."""
        harness = Harness(
            lambda request: httpx.Response(401, headers=headers, stream=httpx.ByteStream(content)),
            max_body_bytes=2048,
        )
        with pytest.raises(AuthError):
            harness.run(stats)
        assert len(harness.requests) == 1


class TestMalformedBodies:
    def test_invalid_json(self) -> None:
        """A 200 that is not JSON raises invalid_json carrying status 200 and the request id."""
        harness = Harness(
            reply(200, content=b'{"statistics": {', headers={"X-Request-Id": "req-json"})
        )
        with pytest.raises(ResponseError) as info:
            harness.run(stats)
        assert info.value.code == "invalid_json"
        assert info.value.detail.http_status == 200
        assert info.value.detail.request_id == "req-json"
        assert len(harness.requests) == 1
        assert harness.sleeps == []

    def test_wrong_types(self) -> None:
        """A 200 with the wrong types raises invalid_response with its path and request id."""
        body = {"statistics": {"items": [{"type": "train", "status": {"Running": "many"}}]}}
        harness = Harness(reply(200, body, headers={"X-Request-Id": "req-types"}))
        with pytest.raises(ResponseError) as info:
            harness.run(stats)
        assert info.value.code == "invalid_response"
        assert info.value.detail.http_status == 200
        assert info.value.detail.request_id == "req-types"
        assert info.value.detail.message.startswith("$.statistics.items[0].status.Running: ")
        assert "request_id=req-types" in str(info.value)
        assert len(harness.requests) == 1


class TestListPools:
    @pytest.mark.parametrize(
        ("filters", "query"),
        [
            pytest.param({}, b"", id="no-filters"),
            pytest.param({"workspace_id": "0"}, b"workspaceId=0", id="workspace"),
            pytest.param({"status": "Running"}, b"status=Running", id="status"),
            pytest.param(
                {"label_selector": "os.modelarts/name=Prod A"},
                b"labelSelector=os.modelarts%2Fname%3DProd%20A",
                id="label-selector",
            ),
            pytest.param(
                {"workspace_id": "ws 1~", "status": "Abnormal", "label_selector": "a=b,c=d"},
                b"labelSelector=a%3Db%2Cc%3Dd&status=Abnormal&workspaceId=ws%201~",
                id="all-sorted",
            ),
            pytest.param(
                {"workspace_id": "", "status": "Error", "label_selector": None},
                b"status=Error",
                id="empty-left-out",
            ),
            pytest.param({"workspace_id": "", "label_selector": ""}, b"", id="all-empty"),
        ],
    )
    def test_path_and_canonical_query_of_the_set_filters(
        self, filters: dict[str, str | None], query: bytes
    ) -> None:
        """ListPools is a GET of /v2/{project_id}/pools whose query holds only the filters
        set, sorted and RFC 3986 encoded (space %20), and is absent when none is set."""
        harness = Harness(reply(200, POOLS_BODY))
        harness.run(
            lambda c: c.list_pools(
                workspace_id=filters.get("workspace_id"),
                status=filters.get("status"),
                label_selector=filters.get("label_selector"),
            )
        )
        (request,) = harness.requests
        assert request.method == "GET"
        path = b"/v2/0a1b2c3d4e5f60718293a4b5c6d7e8f9/pools"
        assert request.url.raw_path == (path + b"?" + query if query else path)

    def test_success(self) -> None:
        """A 200 ListPools answer becomes the parsed PoolList, observed once under api pools."""
        harness = Harness(reply(200, POOLS_BODY))
        assert harness.run(pools) == POOLS
        assert harness.observed == [(Api.POOLS, "200")]

    @pytest.mark.parametrize(
        ("steps", "error", "observed"),
        [
            pytest.param([reply(401, AUTH_FAILURE)], AuthError, ["401"], id="401-once"),
            pytest.param(
                [reply(400, {"error_code": "ModelArts.50004000"})], ApiError, ["400"], id="400"
            ),
            pytest.param([reply(503)] * 3, ApiError, ["503"] * 3, id="503-retried"),
            pytest.param(
                [fail(httpx.ConnectError)] * 3, TransportError, ["none"] * 3, id="refused"
            ),
            pytest.param(
                [reply(200, {"kind": "Pool"})], ResponseError, ["200"], id="missing-items"
            ),
        ],
    )
    def test_failures_are_observed_as_pools(
        self, steps: list[Reply], error: type[Exception], observed: list[str]
    ) -> None:
        """Every attempt of a failing ListPools is observed with api pools and its status."""
        harness = Harness(*steps)
        with pytest.raises(error):
            harness.run(pools)
        assert harness.observed == [(Api.POOLS, status) for status in observed]

    def test_missing_items_names_the_path(self) -> None:
        """A 200 without ``items`` is invalid_response naming $.items, with the request id."""
        harness = Harness(reply(200, {"metadata": {}}, headers={"X-Request-Id": "req-pl"}))
        with pytest.raises(ResponseError) as info:
            harness.run(pools)
        assert info.value.code == "invalid_response"
        assert info.value.detail.message.startswith("$.items: ")
        assert (info.value.detail.http_status, info.value.detail.request_id) == (200, "req-pl")


SIM_AK, SIM_SK = "QTWAOYTTINDUT2QVKYUC", "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"


class TestListPoolsOverSockets:
    """ListPools signed with AK/SK, over loopback, against the simulator on the real clock."""

    @pytest.fixture
    def sim(self) -> Iterator[Simulator]:
        simulator = Simulator(access_keys={SIM_AK: SIM_SK})
        simulator.set_pool_info(
            PROJECT,
            "pool-a",
            display_name="Prod A",
            resources={T4: (4, 8)},
            nodes={"available": {T4: 3}, "abnormal": {T4: 1}},
        )
        simulator.set_pool_info(PROJECT, "pool-b", pool_type="Logical", phase="Creating")
        simulator.set_pool_info(PROJECT, "pool-c", workspace_id="ws-1")
        simulator.set_pool_info(PROJECT, "pool-d", workspace_id="ws-1", phase="Error")
        with simulator:
            yield simulator

    @staticmethod
    def run(
        sim: Simulator, call: Call, secret_key: str = SIM_SK
    ) -> tuple[Any, list[tuple[Api, str]]]:
        """The result of ``call`` with a signing client, and the statuses it observed."""
        observed: list[tuple[Api, str]] = []
        credentials = AkSkCredentials(Secret(SIM_AK, "test"), Secret(secret_key, "test"))

        async def main() -> Any:
            auth = AkSkAuth(credentials, time.time)
            async with httpx.AsyncClient(auth=auth) as http:
                client = modelarts_client(
                    http,
                    lambda api, status: observed.append((api, status)),
                    endpoint=sim.url,
                    sleep=lambda delay: asyncio.sleep(0),
                )
                return await call(client)

        return asyncio.run(main()), observed

    def test_filters_and_signature(self, sim: Simulator) -> None:
        """Signed ListPools calls are accepted, each filter keeps the simulator's pools it
        names, and the pool served is parsed field for field."""

        async def calls(client: ModelArtsClient) -> list[PoolList]:
            return [
                await client.list_pools(),
                await client.list_pools(status="creating"),
                await client.list_pools(workspace_id="ws-1"),
                await client.list_pools(workspace_id="ws-1", status="failed"),
                await client.list_pools(label_selector="os.modelarts/name=Prod A"),
            ]

        results, observed = self.run(sim, calls)
        assert [[p.name for p in r.pools] for r in results] == [
            ["pool-a", "pool-b"],
            ["pool-b"],
            ["pool-c", "pool-d"],
            ["pool-d"],
            ["pool-a"],
        ]
        prod_a, creating = results[0].pools
        assert prod_a == Pool(
            *PROD_A, (PoolFlavor(T4, 4.0, 8.0),), ((T4, "available", 3.0), (T4, "abnormal", 1.0))
        )
        assert (creating.pool_type, creating.phase) == ("Logical", "Creating")
        assert observed == [(Api.POOLS, "200")] * 5
        recorded = sim.requests()
        assert [(r.path, r.status, r.access_key) for r in recorded] == [
            (f"/v2/{PROJECT}/pools", 200, SIM_AK)
        ] * 5
        assert [r.query for r in recorded] == [
            "",
            "status=creating",
            "workspaceId=ws-1",
            "status=failed&workspaceId=ws-1",
            "labelSelector=os.modelarts%2Fname%3DProd%20A",
        ]

    def test_wrong_secret_key_is_refused_once(self, sim: Simulator) -> None:
        """A ListPools signed with the wrong SK raises AuthError after one request."""
        with pytest.raises(AuthError) as info:
            self.run(sim, pools, secret_key="not-the-secret")
        assert info.value.code == "APIGW.0301"
        assert [r.status for r in sim.requests()] == [401]

    def test_server_error_is_retried(self, sim: Simulator) -> None:
        """A 503 on ListPools is retried; both answers are observed under api pools."""
        sim.inject(Fault.server_error(503, api="pools", times=1))
        result, observed = self.run(sim, pools)
        assert [p.name for p in result.pools] == ["pool-a", "pool-b"]
        assert observed == [(Api.POOLS, "503"), (Api.POOLS, "200")]


def _api_error(status: int) -> ApiError:
    return ApiError(ErrorDetail(http_status=status))


def _throttled(retry_after: float | None) -> ThrottledError:
    return ThrottledError(ErrorDetail(http_status=429), retry_after)


class TestBackoffDelay:
    @pytest.mark.parametrize(
        ("attempt", "expected"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 30.0), (20, 30.0)]
    )
    def test_ceiling_doubles_up_to_max_backoff(self, attempt: int, expected: float) -> None:
        """The largest delay is 0.5 s doubled per attempt, capped at max_backoff (30 s)."""
        delay = backoff_delay(_api_error(503), attempt, POLICY, FixedRandom(1.0))
        assert delay == pytest.approx(expected)

    def test_full_jitter_reaches_zero(self) -> None:
        """Full jitter means the smallest delay is zero."""
        assert backoff_delay(_api_error(500), 3, POLICY, FixedRandom(0.0)) == 0.0

    def test_transport_error_uses_the_same_backoff(self) -> None:
        """A transport error backs off like a 5xx."""
        error = TransportError(ErrorDetail(), "connect_error")
        assert backoff_delay(error, 2, POLICY, FixedRandom(1.0)) == pytest.approx(1.0)

    @pytest.mark.parametrize(
        ("retry_after", "fraction", "expected"),
        [(2.0, 0.0, 2.0), (2.0, 1.0, 2.2), (0.0, 1.0, 0.0), (30.0, 0.0, 30.0)],
    )
    def test_retry_after_honoured(
        self, retry_after: float, fraction: float, expected: float
    ) -> None:
        """Retry-After up to max_backoff is waited, plus at most 10 %."""
        delay = backoff_delay(_throttled(retry_after), 1, POLICY, FixedRandom(fraction))
        assert delay == pytest.approx(expected)

    def test_retry_after_beyond_max_backoff(self) -> None:
        """Retry-After above max_backoff means waiting is pointless (None)."""
        assert backoff_delay(_throttled(30.5), 1, POLICY, FixedRandom(0.0)) is None

    @pytest.mark.parametrize(
        ("attempt", "fraction", "expected"),
        [(1, 0.0, 2.0), (1, 1.0, 5.0), (2, 0.0, 4.0), (2, 1.0, 10.0), (5, 1.0, 30.0)],
    )
    def test_throttled_without_retry_after(
        self, attempt: int, fraction: float, expected: float
    ) -> None:
        """Without Retry-After, a 429 waits 2-5 s, doubling per attempt, capped at 30 s."""
        delay = backoff_delay(_throttled(None), attempt, POLICY, FixedRandom(fraction))
        assert delay == pytest.approx(expected)


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2", 2.0),
            (" 7 ", 7.0),
            ("1.5", 1.5),
            ("0", 0.0),
            ("-5", 0.0),
            ("Wed, 21 Oct 2015 07:28:00 GMT", 3.0),
            ("Wed, 21 Oct 2015 07:28:30 GMT", 33.0),
            ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
            (None, None),
            ("", None),
            ("soon", None),
            ("Wed, 32 Oct 2015 07:28:00 GMT", None),
        ],
    )
    def test_cases(self, value: str | None, expected: float | None) -> None:
        """Delta-seconds and HTTP dates (from ``now``) give seconds, never negative; junk None."""
        assert parse_retry_after(value, OCT_21_2015_0728_UTC - 3.0) == expected


class LowJitter(random.Random):
    """Backoffs at a tenth of their range: 0.05 s for a first retry, whatever the seed."""

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * 0.1


def limited(attempts: int | None = None, time_left: float | None = None) -> Call:
    """A workload statistics call under ``CallLimits(attempts, time_left)``."""
    return lambda client: client.workload_statistics("pool-a", CallLimits(attempts, time_left))


class TestCallLimits:
    """The poller's bounds on one call: attempts, and a deadline for the cycle."""

    def test_one_attempt_means_no_retry(self) -> None:
        """``attempts=1`` sends a retryable failure back at once, without a retry."""
        harness = Harness(reply(503, {"error_code": "APIGW.0203"}), reply(200, WORKLOAD_BODY))
        with pytest.raises(ApiError):
            harness.run(limited(attempts=1))
        assert len(harness.requests) == 1
        assert harness.sleeps == []

    def test_no_limits_keep_the_retry_policy(self) -> None:
        """Without limits the policy's attempts apply (the same answers succeed)."""
        harness = Harness(reply(503, {"error_code": "APIGW.0203"}), reply(200, WORKLOAD_BODY))
        assert harness.run(limited()) == WORKLOAD
        assert len(harness.requests) == 2

    def test_a_retry_after_the_deadline_is_not_made(self) -> None:
        """A 429 asking to come back in 2 s with 1 s left: the 429 is raised at once, noted
        as given up, with no sleep and no second request."""
        throttled = reply(429, {"error_code": "APIGW.0308"}, headers={"Retry-After": "2"})
        harness = Harness(throttled, reply(200, WORKLOAD_BODY))
        with pytest.raises(ThrottledError) as raised:
            harness.run(limited(time_left=1.0))
        assert raised.value.code == "APIGW.0308"
        assert any("deadline" in note for note in raised.value.__notes__)
        assert harness.sleeps == []
        assert len(harness.requests) == 1

    def test_a_retry_before_the_deadline_is_made(self) -> None:
        """With time left after the Retry-After, the retry goes out."""
        throttled = reply(429, {"error_code": "APIGW.0308"}, headers={"Retry-After": "2"})
        harness = Harness(throttled, reply(200, WORKLOAD_BODY))
        assert harness.run(limited(time_left=30.0)) == WORKLOAD
        assert len(harness.requests) == 2

    def test_an_answer_later_than_the_deadline_is_not_waited_for(self) -> None:
        """An answer that would come after the deadline (but within ``timeout``) is cut
        there: deadline_exceeded, not timeout, after about the time that was left."""

        async def late(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(2.0)
            return httpx.Response(200, json=WORKLOAD_BODY)

        harness = Harness(late, timeout=5.0)
        started = time.monotonic()
        with pytest.raises(TransportError) as raised:
            harness.run(limited(time_left=0.2))
        assert raised.value.code == "deadline_exceeded"
        assert time.monotonic() - started < 1.5

    def test_a_retry_cut_by_the_deadline_reports_the_earlier_answer(self) -> None:
        """A 503, then a retry whose answer would come after the deadline: the 503 is
        raised (it says more than "out of time"), noted as given up."""

        async def late(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(2.0)
            return httpx.Response(200, json=WORKLOAD_BODY)

        harness = Harness(
            reply(503, {"error_code": "APIGW.0203"}), late, timeout=5.0, rng=LowJitter()
        )
        with pytest.raises(ApiError) as raised:
            harness.run(limited(time_left=0.3))
        assert raised.value.code == "APIGW.0203"
        assert any("deadline" in note for note in raised.value.__notes__)
        assert len(harness.requests) == 2

    def test_no_time_left_sends_nothing(self) -> None:
        """A call made after its deadline fails as deadline_exceeded without a request."""
        harness = Harness(reply(200, WORKLOAD_BODY))
        with pytest.raises(TransportError) as raised:
            harness.run(limited(time_left=0.0))
        assert raised.value.code == "deadline_exceeded"
        assert harness.requests == []
