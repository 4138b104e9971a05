"""The ModelArts API client: one method per API, models out, typed errors.

Each call is at most ``retry.max_attempts`` attempts, each bounded by ``timeout`` seconds in
total (connect, send, receive). Retried: 5xx, 429 (after ``Retry-After`` when given, else a
2-5 s backoff) and transport errors, with exponential backoff and full jitter. Never retried:
401/403 (more than five bad signatures lock the customer's AK/SK for five minutes) and other
4xx. Bodies larger than ``max_body_bytes`` (after decompression, which is bounded by it:
:mod:`exporter.bodies`) are refused unread.
No Prometheus here: every HTTP answer is reported to ``observe(api, status)``.

With a ``budget`` (:class:`~exporter.budget.RequestBudget`, one per target), every attempt,
retries included, first waits for a token, and every 429 tells the budget, which then slows
and pauses the whole target, not just the request that was refused. Waiting for a token is
not part of an attempt's ``timeout``.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import quote

import httpx

from exporter.bodies import BodyTooLarge, BoundedBody, EncodingError
from exporter.budget import RequestBudget
from exporter.config import RetryPolicy
from exporter.errors import (
    DEADLINE_EXCEEDED,
    ApiError,
    AuthError,
    ErrorDetail,
    NotFoundError,
    PollError,
    ResponseError,
    ThrottledError,
    TransportError,
)
from exporter.models import (
    NO_LIMITS,
    Api,
    CallLimits,
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
from exporter.signing import canonical_query

__all__ = ["ModelArtsClient", "backoff_delay", "parse_retry_after"]

Observer = Callable[[Api, str], None]
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def backoff_delay(
    error: PollError, attempt: int, policy: RetryPolicy, rng: random.Random
) -> float | None:
    """How long to wait before attempt ``attempt + 1``; None if waiting is pointless.

    ``Retry-After`` is honoured exactly (plus up to 10 % jitter) unless it exceeds
    ``max_backoff``: then this poll gives up and the next interval tries again.
    """
    if isinstance(error, ThrottledError):
        if error.retry_after is not None:
            if error.retry_after > policy.max_backoff:
                return None
            return float(error.retry_after) * rng.uniform(1.0, 1.1)
        return min(policy.max_backoff, rng.uniform(2.0, 5.0) * 2.0 ** (attempt - 1))
    ceiling = min(policy.max_backoff, policy.initial_backoff * 2.0 ** (attempt - 1))
    return rng.uniform(0, ceiling)


def _out_of_time(message: str) -> TransportError:
    return TransportError(ErrorDetail(message=message), DEADLINE_EXCEEDED)


class ModelArtsClient:
    """Calls the ModelArts APIs of one project. Authentication is the ``http`` client's."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        endpoint: str,
        project_id: str,
        timeout: float,
        retry: RetryPolicy,
        max_body_bytes: int,
        observe: Observer,
        clock: Callable[[], float],
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        self._http = http
        self._endpoint = endpoint.rstrip("/")
        self._project = quote(project_id, safe="")
        self._timeout = timeout
        self._retry = retry
        self._max_body = max_body_bytes
        self._observe = observe
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._budget = budget

    async def workload_statistics(
        self, pool: str, limits: CallLimits = NO_LIMITS
    ) -> WorkloadStatistics:
        """ShowWorkloadStatistics: job counts by type and status in one pool."""
        path = f"/v2/{self._project}/statistics/pools/{quote(pool, safe='')}/workloads"
        body = await self._get(Api.WORKLOAD_STATISTICS, path, [], limits)
        return zero_filled(body.parse(parse_workload_statistics))

    async def resource_specs(self, job_type: str, limits: CallLimits = NO_LIMITS) -> ResourceSpecs:
        """QueryJobResourceSpecs for one job type (``train``, ``inference``)."""
        path = f"/v1/{self._project}/job/resource-specs"
        body = await self._get(Api.RESOURCE_SPECS, path, [("job_type", job_type)], limits)
        return body.parse(parse_resource_specs)

    async def list_pools(
        self,
        *,
        workspace_id: str | None = None,
        status: str | None = None,
        label_selector: str | None = None,
        limits: CallLimits = NO_LIMITS,
    ) -> PoolList:
        """ListPools: the project's resource pools (no pagination). Unset filters are left
        out of the query; ModelArts then uses workspace ``"0"`` and lists every phase."""
        path = f"/v2/{self._project}/pools"
        params = (
            ("workspaceId", workspace_id),
            ("status", status),
            ("labelSelector", label_selector),
        )
        body = await self._get(Api.POOLS, path, [(k, v) for k, v in params if v], limits)
        return body.parse(parse_pool_list)

    async def _get(
        self, api: Api, path: str, query: list[tuple[str, str]], limits: CallLimits
    ) -> _Body:
        # The canonical query is what the signer signs; sending it as-is keeps them equal.
        url = f"{self._endpoint}{path}"
        if query:
            url += "?" + canonical_query(query)
        loop = asyncio.get_running_loop()
        until = math.inf if limits.time_left is None else loop.time() + limits.time_left
        attempts = limits.attempts or self._retry.max_attempts
        attempt = 0
        last: PollError | None = None
        while True:
            attempt += 1
            try:
                return await self._attempt(api, url, until - loop.time())
            except PollError as error:
                if error.code == DEADLINE_EXCEEDED and last is not None:
                    # The earlier answer says more than "out of time" does.
                    last.add_note("gave up: the deadline came during the next attempt")
                    raise last from None
                # Without its traceback: its frames hold the attempt's buffers.
                last = error.with_traceback(None)
                if not error.retryable or attempt >= attempts:
                    raise
                delay = backoff_delay(error, attempt, self._retry, self._rng)
                if delay is None:
                    raise
                if loop.time() + delay >= until:
                    error.add_note("gave up: the next attempt would start after the deadline")
                    raise
                await self._sleep(delay)

    async def _attempt(self, api: Api, url: str, time_left: float) -> _Body:
        if time_left <= 0:
            raise _out_of_time("no time left before the deadline")
        if self._budget is not None:
            try:
                async with asyncio.timeout(time_left):
                    await self._budget.acquire()
            except TimeoutError:
                raise _out_of_time("requests paused (throttled) until after the deadline") from None
        cut = time_left < self._timeout
        try:
            async with asyncio.timeout(min(self._timeout, time_left)):
                async with self._http.stream("GET", url) as response:
                    raw = await self._body(response)
        except (TimeoutError, httpx.TimeoutException):
            self._observe(api, "none")
            if cut:
                raise _out_of_time("no answer before the deadline") from None
            detail = ErrorDetail(message=f"no answer within {self._timeout:g}s")
            raise TransportError(detail, "timeout") from None
        except httpx.HTTPError as exc:
            self._observe(api, "none")
            code = "connect_error" if isinstance(exc, httpx.ConnectError) else "transport_error"
            # A local protocol error quotes the offending header, which may be a credential.
            text = "" if isinstance(exc, httpx.LocalProtocolError) else f": {str(exc)[:200]}"
            detail = ErrorDetail(message=f"{type(exc).__name__}{text}")
            raise TransportError(detail, code) from None
        except ResponseError as error:  # body too large: still an HTTP answer to count
            self._observe(api, str(error.detail.http_status))
            raise
        self._observe(api, str(response.status_code))
        request_id = response.headers.get("X-Request-Id")
        if not 200 <= response.status_code < 300:
            failure = self._error(response, raw, request_id)
            if isinstance(failure, ThrottledError) and self._budget is not None:
                self._budget.throttled(failure.retry_after)
            raise failure
        return _Body(raw, response.status_code, request_id)

    async def _body(self, response: httpx.Response) -> bytes:
        """The body of a success, or ``ResponseError``; of an error status, what could be
        read: the status says enough (a 401 must be a refusal whatever its body)."""
        try:
            return await self._read(response)
        except ResponseError:
            if 200 <= response.status_code < 300:
                raise
            return b""

    async def _read(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self._max_body:
            raise self._too_large(response)
        try:
            if response.is_stream_consumed:  # read in memory already (a mock transport)
                body = BoundedBody("", self._max_body)  # and decoded by httpx
                body.feed(response.content)
            else:
                body = BoundedBody(response.headers.get("Content-Encoding", ""), self._max_body)
                async for chunk in response.aiter_raw():
                    body.feed(chunk)
            return body.finish()
        except BodyTooLarge:
            raise self._too_large(response) from None
        except EncodingError as error:
            detail = ErrorDetail(
                http_status=response.status_code,
                message=str(error),
                request_id=response.headers.get("X-Request-Id"),
            )
            raise ResponseError(detail, error.code) from None

    def _too_large(self, response: httpx.Response) -> ResponseError:
        detail = ErrorDetail(
            http_status=response.status_code,
            message=f"response body larger than {self._max_body} bytes",
            request_id=response.headers.get("X-Request-Id"),
        )
        return ResponseError(detail, "response_too_large")

    def _error(self, response: httpx.Response, raw: bytes, request_id: str | None) -> ApiError:
        status = response.status_code
        try:
            code, message = error_fields(load_json(raw))
        except ResponseError:
            code, message = None, ""
        detail = ErrorDetail(status, code, message or f"HTTP {status}", request_id)
        if status in (401, 403):
            return AuthError(detail)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
            return ThrottledError(detail, retry_after)
        if status == 404:
            return NotFoundError(detail)
        return ApiError(detail)


class _Body:
    """A 2xx body; parsing errors are given the call's status and request id."""

    def __init__(self, raw: bytes, status: int, request_id: str | None) -> None:
        self._raw = raw
        self._status = status
        self._request_id = request_id

    def parse(self, parser: Callable[[object], T]) -> T:
        try:
            return parser(load_json(self._raw))
        except PollError as error:
            raise error.with_context(self._status, self._request_id) from None
