"""``modelarts-exporter probe``: one request per API and item, and what to do about each.

The last step of an install: before the exporter runs, ask ModelArts once with the real
config and credentials. For each target, in this order, one request each, never a retry
(the client is wired by :func:`exporter.wiring.connect`, with ``retry.max_attempts`` 1):

- ListPools, when pool discovery is configured;
- the resource-spec list (QueryJobResourceSpecs), per configured job type;
- ShowWorkloadStatistics, per configured pool, and for the first pool that discovery
  takes and ``pools`` does not name, so that its permission and name are tried too.

A 401 or 403 stops the target at once: its remaining items are shown, not sent (more than
five bad signatures lock the AK/SK for five minutes). So does a metadata service that
gives no credentials, and :data:`~exporter.cycle.PROBES` requests in a row without an
answer (as the exporter does: a blocked network costs a few timeouts, not one per item).

The table goes to ``out``: target, API, item, HTTP status, error code, request id and
what to do. No secret is printed: ModelArts' own messages are shown only for errors that
have no advice here, and every configured secret is masked in the text. The exit code is
0 only when every request was sent and answered 2xx with a usable body, else 1.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TextIO

import httpx
from structlog.typing import FilteringBoundLogger

from exporter.clock import SystemClock
from exporter.config import (
    AkSkCredentials,
    Config,
    PasswordCredentials,
    Target,
    iter_secrets,
)
from exporter.cycle import PROBES, Source
from exporter.discovery import discovery_of
from exporter.errors import POOL_NOT_FOUND, AuthError, PollError, ResponseError, TransportError
from exporter.logs import SecretScrubber
from exporter.models import Api, PoolList, ResourceSpecs, Result, WorkloadStatistics
from exporter.selfmetrics import RequestLedger
from exporter.wiring import Connection, ResponseHook, connect

__all__ = [
    "API_NAMES",
    "HEADER",
    "PERMISSIONS",
    "Connector",
    "LastAnswer",
    "Row",
    "probe",
    "probe_target",
    "render",
    "run_probe",
]

#: The names the ModelArts API Reference gives the APIs.
API_NAMES = {
    Api.POOLS: "ListPools",
    Api.RESOURCE_SPECS: "QueryJobResourceSpecs",
    Api.WORKLOAD_STATISTICS: "ShowWorkloadStatistics",
}
#: The IAM action each API needs (docs/credentials.md, "Permissions"); the resource-spec
#: list documents none.
PERMISSIONS = {Api.POOLS: "modelarts:pool:list", Api.WORKLOAD_STATISTICS: "modelarts:pool:get"}
HEADER = ("PROJECT", "REGION", "API", "ITEM", "STATUS", "CODE", "REQUEST ID", "WHAT TO DO")
NONE = "-"
#: The local error code of a metadata service that gave no credentials (exporter.metadata).
METADATA_UNAVAILABLE = "metadata_unavailable"
#: The start of the messages of IAM token request failures (exporter.auth).
_IAM = "IAM token request"


@dataclass(frozen=True)
class Row:
    """One request of the probe (or one not sent), as a line of the table."""

    target: Target
    api: Api
    item: str
    status: str = NONE
    code: str = NONE
    request_id: str = NONE
    advice: str = ""
    #: Sent and answered 2xx with a usable body.
    ok: bool = False
    sent: bool = True

    def cells(self) -> tuple[str, ...]:
        t = self.target
        api = API_NAMES[self.api]
        return (
            t.project_id,
            t.region,
            api,
            self.item,
            self.status,
            self.code,
            self.request_id,
            self.advice,
        )


#: Builds a target's client: ``(target, config, on_response, log)`` → its connection.
Connector = Callable[[Target, Config, ResponseHook, FilteringBoundLogger], Connection]


def _connect(
    target: Target, config: Config, on_response: ResponseHook, log: FilteringBoundLogger
) -> Connection:
    """The exporter's own wiring; its request counts are not needed here."""
    return connect(
        target,
        config,
        clock=SystemClock(),
        ledger=RequestLedger(),
        log=log,
        on_response=on_response,
    )


class LastAnswer:
    """The status and request id of the last ModelArts answer (an ``on_response`` hook)."""

    def __init__(self) -> None:
        self.status = NONE
        self.request_id = NONE

    def clear(self) -> None:
        self.status = self.request_id = NONE

    async def __call__(self, response: httpx.Response) -> None:
        self.status = str(response.status_code)
        self.request_id = response.headers.get("X-Request-Id") or NONE


# --------------------------------------------------------------------------- advice


def _credentials_advice(target: Target) -> str:
    creds = target.credentials
    if isinstance(creds, AkSkCredentials):
        return (
            "credentials refused: check the AK/SK (and the security token, if temporary) and "
            "this host's clock: X-Sdk-Date must be within 15 minutes of the server's"
        )
    if isinstance(creds, PasswordCredentials):
        return (
            "IAM token refused: check credentials.user, password and domain, and that "
            "project_id is a project of that account"
        )
    return (
        "the agency's temporary credentials were refused: check the agency of this server "
        "and this host's clock (X-Sdk-Date must be within 15 minutes)"
    )


def _forbidden_advice(api: Api) -> str:
    permission = PERMISSIONS.get(api)
    if permission is None:
        return (
            "permission denied: the API Reference documents no IAM action for this API; "
            "check that the identity may use ModelArts in this project (docs/credentials.md)"
        )
    return (
        f"permission denied: grant the IAM action {permission} in this project "
        "(docs/credentials.md, Permissions)"
    )


def _advice(target: Target, config: Config, api: Api, error: PollError, found: bool) -> str:
    """What to do about ``error``; ``found``: the item is a pool ListPools listed."""
    d, code = error.detail, error.code
    status = d.http_status
    if d.message.startswith(_IAM):
        if isinstance(error, AuthError):
            return "IAM refused the password: check credentials.user, password and domain"
        if isinstance(error, TransportError):
            return (
                f"no answer from IAM at {target.iam_endpoint}: check iam_endpoint and the "
                "network path"
            )
    if code == METADATA_UNAVAILABLE:
        return f"no credentials from the metadata service: is an agency attached? ({d.message})"
    if isinstance(error, TransportError):
        if code == "timeout":
            return (
                f"no answer within {config.timeout:g}s: check the network path to "
                f"{target.endpoint} (proxy, firewall), or raise timeout"
            )
        return f"no connection to {target.endpoint}: check endpoint, DNS and egress firewall"
    if status == 401:
        return _credentials_advice(target)
    if status == 403:
        return _forbidden_advice(api)
    if status == 429:
        return f"throttled: lower requests_per_second (now {target.requests_per_second:g}/s)"
    if status == 404 and code == POOL_NOT_FOUND:
        if found:
            return "ListPools lists this pool, yet it is not found: report it with the request id"
        if target.discovery is not None:
            return "no such pool: remove it from pools (discovery is on and finds the pools)"
        return "no such pool: remove it from pools, or turn on discovery"
    if status == 404:
        return f"no such API at {target.endpoint}: wrong region or endpoint"
    if status == 400 and code == "ModelArts.50004000":
        return f"bad request: check that project_id is a project of region {target.region}"
    if code == "response_too_large":
        return "the answer is larger than max_response_bytes: raise it if the answer is genuine"
    if isinstance(error, ResponseError):
        return (
            f"answered, but not as the API documents ({d.message[:100]}): report it with "
            "the request id"
        )
    if status is not None and status >= 500:
        failed = "IAM" if d.message.startswith("IAM ") else "ModelArts"
        return f"{failed} failed: try again; if it persists, quote the request id to support"
    return f"{d.message[:100]} (docs/troubleshooting.md)"


def _stops(error: PollError) -> bool:
    """Whether no further request of the target may be sent (refused, or no credentials)."""
    return isinstance(error, AuthError) or error.code == METADATA_UNAVAILABLE


# --------------------------------------------------------------------------- probing


def _summary(result: Result, taken: PoolList | None) -> str:
    if isinstance(result, PoolList):
        chosen = "" if taken is None else f", {len(taken.pools)} taken by the discovery rules"
        return f"ok: {len(result.pools)} pools listed{chosen}"
    if isinstance(result, ResourceSpecs):
        full = sum(1 for spec in result.specs if spec.no_resource)
        return f"ok: {len(result.specs)} specs, {full} without capacity"
    if isinstance(result, WorkloadStatistics):
        counts = [(s, n) for jobs in result.job_types for s, n in jobs.statuses]
        running = sum(n for s, n in counts if s == "running")
        return f"ok: {sum(n for _, n in counts):g} jobs, {running:g} running"
    return "ok"


async def _call(source: Source, target: Target, api: Api, item: str) -> Result:
    if api is Api.WORKLOAD_STATISTICS:
        return await source.workload_statistics(item)
    if api is Api.RESOURCE_SPECS:
        return await source.resource_specs(item)
    rules = target.discovery
    assert rules is not None  # ListPools is only planned with discovery
    return await source.list_pools(
        workspace_id=rules.workspace_id, status=rules.status, label_selector=rules.label_selector
    )


def _planned(target: Target) -> list[tuple[Api, str]]:
    return [
        *([(Api.POOLS, NONE)] if target.discovery is not None else []),
        *((Api.RESOURCE_SPECS, job_type) for job_type in target.job_types),
        *((Api.WORKLOAD_STATISTICS, pool) for pool in target.pools),
    ]


async def probe_target(
    target: Target, config: Config, source: Source, last: LastAnswer | None = None
) -> list[Row]:
    """Probe one target through ``source``, one request at a time; ``last`` is the
    ``on_response`` hook of ``source``'s HTTP client (the status and request id of a 2xx)."""
    last = last or LastAnswer()
    pending = _planned(target)
    found: set[str] = set()
    rows: list[Row] = []
    stopped: str | None = None
    unanswered = 0
    while pending:
        api, item = pending.pop(0)
        if stopped is not None:
            rows.append(Row(target, api, item, advice=f"not sent: {stopped}", sent=False))
            continue
        last.clear()
        try:
            result = await _call(source, target, api, item)
        except PollError as error:
            d = error.detail
            status = NONE if d.http_status is None else str(d.http_status)
            advice = _advice(target, config, api, error, item in found)
            rows.append(Row(target, api, item, status, error.code, d.request_id or NONE, advice))
            unanswered = unanswered + 1 if isinstance(error, TransportError) else 0
            if _stops(error):
                what = status if status != NONE else error.code
                stopped = f"the target stopped at the {what} above (never retried)"
            elif unanswered >= PROBES:
                stopped = f"{PROBES} requests in a row got no answer (see above)"
            continue
        unanswered = 0
        taken = None
        if isinstance(result, PoolList):
            discovery = discovery_of(target, config)
            assert discovery is not None
            taken = discovery.accept(result, 0.0)
            extra = [k.name for k in discovery.pool_items if k.name not in target.pools]
            if extra:
                found.add(extra[0])
                pending.append((Api.WORKLOAD_STATISTICS, extra[0]))
        summary = _summary(result, taken)
        if item in found:
            summary += " (a pool ListPools found)"
        problems = getattr(result, "problems", ())
        if problems:  # served by the exporter, but not all of it: not ok
            summary = (
                f"answered, but {len(problems)} field(s) unreadable, e.g. {problems[0][:100]}:"
                " report it with the request id"
            )
        code = "invalid_field" if problems else NONE
        rows.append(
            Row(target, api, item, last.status, code, last.request_id, summary, ok=not problems)
        )
    return rows


async def probe(
    config: Config, log: FilteringBoundLogger, connector: Connector = _connect
) -> list[Row]:
    """Probe every target, one after the other, with clients that never retry."""
    once = replace(config, retry=replace(config.retry, max_attempts=1))
    rows: list[Row] = []
    for target in once.targets:
        last = LastAnswer()
        connection = connector(target, once, last, log.bind(project_id=target.project_id))
        try:
            rows += await probe_target(target, once, connection.client, last)
        finally:
            for client in connection.http_clients:
                await client.aclose()
    return rows


# --------------------------------------------------------------------------- output


def render(rows: Sequence[Row]) -> str:
    """The table, columns aligned (two spaces between them), and a closing verdict."""
    table = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(HEADER) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(cells[:-1], widths, strict=True)), cells[-1]])
        for cells in table
    ]
    sent = [row for row in rows if row.sent]
    good = sum(row.ok for row in sent)
    if good == len(rows):
        verdict = f"all {good} requests answered 2xx"
    else:
        verdict = f"{good} of {len(sent)} requests answered 2xx"
        if len(sent) < len(rows):
            verdict += f"; {len(rows) - len(sent)} not sent"
    return "\n".join([*lines, "", verdict]) + "\n"


def run_probe(
    config: Config,
    log: FilteringBoundLogger,
    out: TextIO | None = None,
    connector: Connector = _connect,
) -> int:
    """Probe, print the table to ``out`` (stdout) with every configured secret masked;
    0 when every request answered 2xx, else 1."""
    rows = asyncio.run(probe(config, log, connector))
    scrub = SecretScrubber(secret.reveal() for secret in iter_secrets(config))
    text = scrub(None, "probe", {"text": render(rows)})["text"]
    (out or sys.stdout).write(text)
    return 0 if all(row.ok for row in rows) else 1
