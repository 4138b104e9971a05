"""The exporter's own health: what the poller counts, and the families that show it.

- **Counted while polling** (``RequestLedger``): API requests by HTTP status, failed polls
  by error code (bounded per project and API).
- **Shown on /metrics** (``health_families``): ``modelarts_up`` and the credential series
  per project; ``modelarts_poll_*`` per polled item; the request and error counters; the
  request budget; poll cycles (completed, skipped, duration); the configured interval and
  staleness; build info, shard, and configuration reloads, named as Prometheus names its own::

    modelarts_exporter_config_last_reload_successful 1
    modelarts_exporter_config_last_reload_success_timestamp_seconds 1.8e+09

These series stay when the data goes stale, so that an operator can see why. Per-item
series carry the labels ``api`` and ``target``: ``target`` names the polled item (a pool,
a job type, or the workspace of pool discovery; ``ItemKey.name``), whatever its API.
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Iterator
from functools import partial

from exporter import __version__
from exporter.families import PROJECT, F, Maker, Regions, every_text, locate, single, table
from exporter.models import Api, Snapshot

__all__ = ["MAX_ERROR_CODES", "RequestLedger", "health_families"]

#: Distinct error codes kept per (project, api) before new ones are counted as "other".
MAX_ERROR_CODES = 32
#: The labels of a polled item's series (the label ``target`` is the item's name).
ITEM = [*PROJECT, "api", "target"]


class RequestLedger:
    """Counts API requests by status and failed polls by error code (bounded)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.errors: Counter[tuple[str, str, str]] = Counter()

    def request(self, project_id: str, api: str, status: str) -> None:
        self.requests[(project_id, str(api), status)] += 1

    def expect_refusals(self, project_id: str, api: str) -> None:
        """Start the 401, 403 and 429 counts at 0, so that a first refusal or throttling is
        an increase that ``increase()`` sees, not the birth of a series at 1."""
        for status in ("401", "403", "429"):
            self.requests.setdefault((project_id, str(api), status), 0)

    def error(self, project_id: str, api: Api, code: str) -> None:
        known = {c for (p, a, c) in self.errors if p == project_id and a == api.value}
        if code not in known and len(known) >= MAX_ERROR_CODES:
            code = "other"
        self.errors[(project_id, api.value, code)] += 1

    def forget(self, project_id: str) -> None:
        """Drop a project's counts: it is no longer polled, its series leave /metrics."""
        for counts in (self.requests, self.errors):
            for key in [k for k in counts if k[0] == project_id]:
                del counts[key]


def health_families(snapshot: Snapshot, regions: Regions, make: Maker[F]) -> Iterator[F]:
    """The exporter's own view of how polling goes."""
    every = every_text(snapshot)
    located = partial(locate, regions=regions)

    yield table(
        make,
        "gauge",
        "modelarts_up",
        "1 when the project's last poll cycle reached ModelArts with accepted credentials, "
        "else 0 (a cycle that sent nothing keeps the value).",
        PROJECT,
        located(((project,), float(reached)) for project, reached in snapshot.up),
    )
    yield table(
        make,
        "gauge",
        "modelarts_credentials_refused",
        "1 from a 401/403 answer to the project's requests until ModelArts accepts a request "
        "again (while the exporter waits out its refusal backoff too), else 0.",
        PROJECT,
        located(((project,), float(refused)) for project, refused in snapshot.credentials_refused),
    )
    yield table(
        make,
        "gauge",
        "modelarts_credentials_last_reload_successful",
        "1 when the project's credential files (secrets given as {file: PATH}), read again "
        "whenever one changes, were read well the last time (or come from no file), else 0: "
        "the previous credentials are still in use.",
        PROJECT,
        located(((project,), float(read)) for project, read in snapshot.credentials_read),
    )
    yield table(
        make,
        "gauge",
        "modelarts_credentials_expiry_timestamp_seconds",
        "Unix time the project's credentials in use expire, where that is known: an IAM "
        "token, or temporary AK/SK from the metadata service (refreshed before it passes).",
        PROJECT,
        located(((project,), at) for project, at in snapshot.credentials_expiry),
    )

    success = make(
        "gauge",
        "modelarts_poll_success",
        f"1 when the last poll of the item succeeded, else 0; items are {every}.",
        ITEM,
    )
    duration = make(
        "gauge",
        "modelarts_poll_duration_seconds",
        "Wall time of the last poll of the item, retries included.",
        ITEM,
    )
    last_success = make(
        "gauge",
        "modelarts_poll_last_success_timestamp_seconds",
        "Unix time of the item's last successful poll.",
        ITEM,
    )
    for item in snapshot.items:
        project = item.key.project_id
        labels = [project, regions.get(project, ""), item.key.api.value, item.key.name]
        success.add_metric(labels, 1.0 if item.success else 0.0)
        duration.add_metric(labels, item.duration_seconds)
        if item.last_success is not None:
            last_success.add_metric(labels, item.last_success)
    yield success
    yield duration
    yield last_success
    yield table(
        make,
        "gauge",
        "modelarts_poll_last_error_info",
        "The error code of the item's last poll when it failed (value always 1; no series "
        "while the last poll succeeded), e.g. ModelArts.50015001 for a pool that does not exist.",
        [*ITEM, "error_code"],
        (
            (
                (key.project_id, regions.get(key.project_id, ""), key.api.value, key.name, code),
                1.0,
            )
            for key, code in (
                (item.key, item.error_code) for item in snapshot.items if not item.success
            )
            if code is not None
        ),
    )

    yield table(
        make,
        "counter",
        "modelarts_api_requests",
        "HTTP requests sent to ModelArts (and IAM, api 'iam_tokens') by API and response "
        "status ('none': no response; 401, 403 and 429 start at 0).",
        [*PROJECT, "api", "code"],
        located(snapshot.requests),
    )
    yield table(
        make,
        "counter",
        "modelarts_poll_errors",
        "Failed polls by API and error code (ModelArts code, or the exporter's word for a "
        "failure without one, e.g. timeout).",
        [*PROJECT, "api", "error_code"],
        located(snapshot.errors),
    )
    yield table(
        make,
        "gauge",
        "modelarts_request_budget_rate",
        "Requests per second the project's request budget allows now: requests_per_second, "
        "lower after a 429 until it recovers.",
        PROJECT,
        located(((project,), rate) for project, rate in snapshot.request_rates),
    )
    yield from _cycle_families(snapshot, regions, make)


def _cycle_families(snapshot: Snapshot, regions: Regions, make: Maker[F]) -> Iterator[F]:
    project = PROJECT
    located = partial(locate, regions=regions)

    yield table(
        make,
        "counter",
        "modelarts_exporter_poll_cycles",
        "Poll cycles completed; every project is polled on its own loop.",
        project,
        located(((p,), stats.cycles) for p, stats in snapshot.cycles),
    )
    yield table(
        make,
        "counter",
        "modelarts_exporter_skipped_cycles",
        "Poll cycles of the project skipped because its previous cycle overran the interval.",
        project,
        located(((p,), stats.skipped) for p, stats in snapshot.cycles),
    )
    yield table(
        make,
        "gauge",
        "modelarts_exporter_poll_cycle_duration_seconds",
        "Wall time of the project's last complete poll cycle.",
        project,
        located(((p,), stats.last_duration_seconds) for p, stats in snapshot.cycles),
    )
    yield single(
        make,
        "modelarts_exporter_poll_interval_seconds",
        "Configured poll interval.",
        snapshot.poll_interval_seconds,
    )
    yield single(
        make,
        "modelarts_exporter_stale_after_seconds",
        "Age after which polled data is no longer exposed.",
        snapshot.stale_after_seconds,
    )
    build = make(
        "gauge",
        "modelarts_exporter_build_info",
        "Version of the exporter and of Python (value always 1).",
        ["version", "python_version"],
    )
    build.add_metric([__version__, platform.python_version()], 1.0)
    yield build
    shard = make(
        "gauge",
        "modelarts_exporter_shard",
        "This exporter's shard of total_shards (value always 1): it polls the pools whose "
        "stable hash falls to it, and shard 0 also polls the resource specs.",
        ["shard", "total_shards"],
    )
    index, total = snapshot.shard
    shard.add_metric([str(index), str(total)], 1.0)
    yield shard
    yield from _config_families(snapshot, make)


def _config_families(snapshot: Snapshot, make: Maker[F]) -> Iterator[F]:
    status = snapshot.config
    yield single(
        make,
        "modelarts_exporter_config_last_reload_successful",
        "1 when the last configuration load succeeded (at start, or a reload by SIGHUP or "
        "POST /-/reload), else 0: the reload was rejected, the previous one is still in use.",
        1.0 if status.last_reload_successful else 0.0,
    )
    if status.last_success is not None:
        yield single(
            make,
            "modelarts_exporter_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load, the initial one included.",
            status.last_success,
        )
