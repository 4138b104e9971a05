"""Temporary AK/SK from the instance metadata service (``exporter.metadata``): read as the
official SDK reads them, refreshed before they expire over a simulated hour, kept while the
metadata service is down until they expire and then a clear failure; and end to end, the
real exporter polling with an agency's credentials that expire every few seconds, with no
request refused and no secret logged."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import httpx
import pytest
from huaweicloudsdkcore.auth import internal
from huaweicloudsdkcore.auth.internal import MetadataAccessor, StsAccessor
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

from exporter.config import MetadataCredentials, parse
from exporter.errors import ConfigError, PollError
from exporter.logs import make_logger
from exporter.metadata import MetadataAuth, MetadataCredentialSource, parse_securitykey
from exporter.simulator import Fault, Simulator
from tests.support.clocks import FakeClock
from tests.support.processes import start_exporter
from tests.support.promtext import value

PROJECT = "a9e0c7a9e0c7a9e0c7a9e0c7a9e0c7a9"
WORKLOADS = f"/v2/{PROJECT}/statistics/pools/pool-a/workloads"
BODIES = [
    {
        "credential": {
            "access": "TEMPAK",
            "secret": "temporary-secret",
            "securitytoken": "token-value",
            "expires_at": "2026-12-07T09:00:00.000000Z",
        }
    },
    {
        "credentials": {
            "accessKeyId": "TEMPAK2",
            "secretAccessKey": "secret-2",
            "securityToken": "token-2",
            "expiration": "2026-12-08T01:02:03.000000Z",
        }
    },
]


class TestParse:
    @pytest.mark.parametrize("body", BODIES)
    def test_fields_are_read_as_the_official_sdk_reads_them(self, body: object) -> None:
        """AK, SK, security token and expiry equal what huaweicloudsdkcore's metadata
        accessor reads from the same answer."""
        raw = json.dumps(body).encode()
        sdk = StsAccessor._process_credential(raw.decode())
        ours, expires_at = parse_securitykey(raw, "metadata test")
        assert ours.access_key.reveal() == sdk.access
        assert ours.secret_key.reveal() == sdk.secret
        assert ours.security_token is not None
        assert ours.security_token.reveal() == sdk.security_token
        assert expires_at == sdk.expire_at

    @pytest.mark.parametrize(
        ("raw", "missing"),
        [(b"[]", "not a JSON object"), (b'{"credential": {"access": "A"}}', "no secret")],
    )
    def test_an_unusable_answer_is_an_error_naming_what_is_missing(
        self, raw: bytes, missing: str
    ) -> None:
        """An answer without the fields is a ``metadata_unavailable`` error that says what
        is missing."""
        with pytest.raises(PollError, match=missing) as raised:
            parse_securitykey(raw, "metadata test")
        assert raised.value.code == "metadata_unavailable"


class TestConfig:
    def test_metadata_credentials_need_no_secret(self) -> None:
        """``type: metadata`` takes the documented endpoint, or the one given."""
        target = {"project_id": PROJECT, "region": "cn-north-4", "pools": ["a"]}
        default = parse({"targets": [{**target, "credentials": {"type": "metadata"}}]}, {})
        assert default.targets[0].credentials == MetadataCredentials("http://169.254.169.254")
        given = {"type": "metadata", "url": "http://127.0.0.1:8080"}
        config = parse({"targets": [{**target, "credentials": given}]}, {})
        assert config.targets[0].credentials == MetadataCredentials("http://127.0.0.1:8080")
        with pytest.raises(ConfigError, match=r"credentials\.access_key"):
            parse({"targets": [{**target, "credentials": {**given, "access_key": "x"}}]}, {})


def agency_simulator(clock: FakeClock) -> Simulator:
    """A simulator on ``clock`` whose metadata endpoint hands out 15-minute credentials."""
    sim = Simulator(clock=clock)
    sim.set_pool(PROJECT, "pool-a", {"train": {"Running": 2}})
    sim.agency.configure(lifetime=15 * 60)
    return sim


def each_minute(
    sim: Simulator,
    clock: FakeClock,
    log: io.StringIO,
    minutes: int,
    before: Callable[[int, MetadataCredentialSource], None],
) -> list[str]:
    """One request signed with metadata credentials per simulated minute, over real sockets;
    ``before(minute, source)`` runs first. The HTTP status of each, or its error code."""

    async def run() -> list[str]:
        outcomes = []
        async with httpx.AsyncClient(timeout=3) as metadata:
            logger = make_logger("debug", "json", stream=log)
            source = MetadataCredentialSource(metadata, sim.url, clock, logger)
            auth = MetadataAuth(source, clock)
            async with httpx.AsyncClient(base_url=sim.url, auth=auth, timeout=3) as api:
                for minute in range(minutes):
                    before(minute, source)
                    try:
                        outcomes.append(str((await api.get(WORKLOADS)).status_code))
                    except PollError as error:
                        outcomes.append(error.code)
                    clock.now += 60
        return outcomes

    with sim:
        return asyncio.run(run())


def events(log: io.StringIO) -> list[str]:
    return [json.loads(line)["event"] for line in log.getvalue().splitlines()]


class TestRefresh:
    def test_an_hour_of_15_minute_credentials_with_no_refusal(self) -> None:
        """Over an hour of a simulated clock, credentials lasting 15 minutes are fetched
        again before they expire (half their lifetime ahead): every request is accepted,
        and 8 sets are fetched, one per 7.5 minutes."""
        clock, log = FakeClock(1_800_000_000.0), io.StringIO()

        def unexpired(minute: int, source: MetadataCredentialSource) -> None:
            assert minute == 0 or (source.expires_at or 0) > clock()

        outcomes = each_minute(agency_simulator(clock), clock, log, 60, unexpired)
        assert outcomes == ["200"] * 60
        assert events(log).count("metadata_credentials_fetched") == 8
        assert "temporary-secret" not in log.getvalue()

    def test_a_down_metadata_service_keeps_credentials_until_they_expire(self) -> None:
        """With the service down, the credentials in hand sign until they expire (the
        failure logged); then each request fails with metadata_unavailable; once the
        service answers again, polling resumes."""
        clock, log = FakeClock(1_800_000_000.0), io.StringIO()
        sim = agency_simulator(clock)

        def outage(minute: int, source: MetadataCredentialSource) -> None:
            if minute in (2, 18):
                sim.agency.configure(available=minute == 18)

        outcomes = each_minute(sim, clock, log, 20, outage)
        assert outcomes[:15] == ["200"] * 15
        assert outcomes[15:18] == ["metadata_unavailable"] * 3
        assert outcomes[18:] == ["200"] * 2
        assert "metadata_refresh_failed" in events(log)


SESSION, KEY = "/meta-data/latest/api/token", "/openstack/latest/securitykey"
HOURS_7 = 7 * 3600.0
#: Each scenario: how the metadata service is set up, the gaps between fetches (a fetch per
#: entry), and the requests (method, path, status) a fetcher should send, which are those
#: huaweicloudsdkcore's MetadataAccessor sends, read from its code and checked below.
SESSION_SCENARIOS = {
    "hardened": ({"require_token": True}, [0.0], [("PUT", SESSION, 200), ("GET", KEY, 200)]),
    "no sessions, asked once a day": (
        {"no_sessions": True},
        [0.0, HOURS_7, 18 * 3600.0],
        [
            ("PUT", SESSION, 405),
            ("GET", KEY, 200),
            ("GET", KEY, 200),
            ("PUT", SESSION, 405),
            ("GET", KEY, 200),
        ],
    ),
    "session expired": (
        {"require_token": True},
        [0.0, HOURS_7],
        [
            ("PUT", SESSION, 200),
            ("GET", KEY, 200),
            ("GET", KEY, 401),
            ("PUT", SESSION, 200),
            ("GET", KEY, 200),
        ],
    ),
    "no agency": ({"attached": False}, [0.0], [("PUT", SESSION, 200), ("GET", KEY, 401)]),
}


def session_simulator(clock: FakeClock, setup: dict[str, bool]) -> Simulator:
    """A simulator whose metadata service is set up as ``setup`` says; ``no_sessions``
    makes its session endpoint answer 405, as a service without sessions does."""
    sim = Simulator(clock=clock)
    if setup.get("no_sessions"):
        sim.inject(Fault(path_contains=SESSION, status=405))
    sim.agency.configure(require_token=setup.get("require_token"), attached=setup.get("attached"))
    return sim


def sdk_fetches(sim: Simulator, clock: FakeClock, gaps: list[float]) -> list[str]:
    """The official SDK's metadata accessor fetching after each gap, its clock ``clock``:
    the AKs, or errors."""
    accessor, got = MetadataAccessor(), []
    with (
        mock.patch.object(MetadataAccessor, "_METADATA_ENDPOINT", sim.url),
        mock.patch.object(internal, "time", SimpleNamespace(time=clock)),
    ):
        for gap in gaps:
            clock.advance(gap)
            try:
                got.append(accessor.get_credential().access)
            except ClientRequestException as error:
                got.append(f"HTTP {error.status_code}")
    return got


def our_fetches(sim: Simulator, clock: FakeClock, gaps: list[float]) -> list[str]:
    """``MetadataCredentialSource`` fetching after each gap: the AKs, or errors."""

    async def run() -> list[str]:
        got = []
        async with httpx.AsyncClient(timeout=3) as http:
            source = MetadataCredentialSource(http, sim.url, clock, make_logger("debug", "json"))
            for gap in gaps:
                clock.advance(gap)
                try:
                    got.append((await source.current()).access_key.reveal())
                except PollError as error:
                    got.append(f"HTTP {error.detail.http_status}")
        return got

    return asyncio.run(run())


class TestSessionToken:
    @pytest.mark.parametrize("scenario", SESSION_SCENARIOS)
    def test_sessions_are_handled_as_the_official_sdk_handles_them(self, scenario: str) -> None:
        """Against the same metadata service (hardened, offering no sessions, a session
        expiring, no agency), our source and huaweicloudsdkcore's MetadataAccessor send the
        same requests and get the same credentials or the same refusal."""
        setup, gaps, expected = SESSION_SCENARIOS[scenario]
        seen = {}
        for name, fetches in (("sdk", sdk_fetches), ("ours", our_fetches)):
            clock = FakeClock(1_800_000_000.0)
            with session_simulator(clock, setup) as sim:
                got = fetches(sim, clock, gaps)
                sent = [(r.method, r.path, r.status) for r in sim.requests()]
            seen[name] = (got, sent)
        assert seen["ours"] == seen["sdk"]
        assert seen["ours"][1] == expected

    def test_no_agency_is_said_plainly_and_the_session_token_never_logged(self) -> None:
        """A server without an agency fails with metadata_unavailable saying so; neither the
        session token nor any credential reaches the log."""
        clock, out = FakeClock(1_800_000_000.0), io.StringIO()

        async def run(sim: Simulator) -> PollError:
            async with httpx.AsyncClient(timeout=3) as http:
                log = make_logger("debug", "json", stream=out)
                source = MetadataCredentialSource(http, sim.url, clock, log)
                with pytest.raises(PollError) as raised:
                    await source.current()
                return raised.value

        with session_simulator(clock, {"attached": False, "require_token": True}) as sim:
            error = asyncio.run(run(sim))
        assert error.code == "metadata_unavailable"
        assert "no agency is attached" in str(error)
        assert "metadata-session-" not in out.getvalue() + str(error)


class TestLastSeconds:
    def test_credentials_about_to_expire_are_not_signed_with(self) -> None:
        """With the metadata service down, credentials 5 s from expiry are not used (a
        request signed now would arrive after it: a 401 that reads as refused credentials);
        the request fails as metadata_unavailable, and none reaches ModelArts."""
        clock = FakeClock(1_800_000_000.0)
        sim = agency_simulator(clock)

        async def run() -> tuple[str, str]:
            async with httpx.AsyncClient(timeout=3) as metadata:
                source = MetadataCredentialSource(metadata, sim.url, clock, make_logger())
                auth = MetadataAuth(source, clock)
                async with httpx.AsyncClient(base_url=sim.url, auth=auth, timeout=3) as api:
                    first = str((await api.get(WORKLOADS)).status_code)
                    sim.agency.configure(available=False)
                    clock.now = (source.expires_at or 0) - 5
                    try:
                        await api.get(WORKLOADS)
                    except PollError as error:
                        return first, error.code
                    return first, "sent"

        with sim:
            outcome = asyncio.run(run())
            sent = [r for r in sim.requests() if r.path == WORKLOADS]
        assert outcome == ("200", "metadata_unavailable")
        assert len(sent) == 1


@pytest.mark.e2e
class TestAgencyOverSockets:
    def test_the_exporter_polls_with_an_agency_and_refreshes_it(self, tmp_path: Path) -> None:
        """The real exporter, configured with ``type: metadata`` and no secret, polls with
        credentials that expire every 4 seconds for 12 seconds: several sets are fetched,
        no request is refused, modelarts_credentials_expiry_timestamp_seconds is ahead of
        now, and no temporary secret reaches the log."""
        sim = Simulator()
        sim.set_pool(PROJECT, "pool-a", {"train": {"Running": 2}})
        sim.agency.configure(lifetime=4.0, require_token=True)
        config = tmp_path / "config.yaml"
        target = {
            "project_id": PROJECT,
            "region": "cn-north-4",
            "endpoint": "",
            "pools": ["pool-a"],
            "credentials": {"type": "metadata"},
        }
        with sim:
            target["endpoint"] = sim.url
            target["credentials"] = {"type": "metadata", "url": sim.url}
            config.write_text(json.dumps({"poll_interval": "500ms", "targets": [target]}))
            exporter = start_exporter(config, tmp_path / "log", {"PATH": os.environ["PATH"]})
            try:
                time.sleep(12)
                samples = exporter.scrape()
            finally:
                exporter.kill()
            sent = sim.requests()
        assert value(samples, "modelarts_up", project_id=PROJECT) == 1.0
        expiry = value(samples, "modelarts_credentials_expiry_timestamp_seconds")
        assert expiry is not None
        assert expiry > time.time() - 1
        assert sim.agency.issued >= 4
        api = [r for r in sent if r.path == WORKLOADS]
        assert len(api) >= 15
        assert [r for r in api if r.status != 200] == []
        assert len({r.access_key for r in api}) >= 4
        log = (tmp_path / "log").read_text()
        assert "temporary-secret" not in log
        assert "temporary-security-token" not in log
