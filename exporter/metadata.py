"""Temporary AK/SK from the instance metadata service: the ECS/CCE agency, no secret at all.

On an ECS server or a CCE node with an agency, ``GET {url}/openstack/latest/securitykey``
answers temporary credentials, as the official SDK's metadata credential provider reads
them (``huaweicloudsdkcore.auth.internal.MetadataAccessor``)::

    {"credential": {"access": "AK…", "secret": "SK…", "securitytoken": "…",
                    "expires_at": "2026-12-07T09:00:00.000000Z"}}

``MetadataCredentialSource`` fetches them, signs with them until shortly before they expire
and then fetches new ones: when less than ``min(40 min, half their lifetime)`` is left (the
SDK refreshes 40 minutes ahead; credentials may last as little as 15 minutes). If the
metadata service does not answer, the credentials in hand are kept until shortly before they
expire (``USE_BEFORE``; the failure is logged, and asked again at most every ``retry_after``
seconds); after that each request fails with ``metadata_unavailable`` and the target's polls
say so. A 401 from
ModelArts drops the credentials, so the next request fetches them again (never a retry).

A hardened metadata service wants a session token, as the SDK handles it: before the first
fetch ``PUT {url}/meta-data/latest/api/token`` (``X-Metadata-Token-Ttl-Seconds: 21600``)
asks for one, sent as ``X-Metadata-Token``; a service that offers none (404, 405, 503) is
asked without, and asked again for one a day later. A securitykey answer of 401 that is
not "no agency" means the session expired: one new session, one more try. Neither token
nor credentials are ever logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
import structlog

from exporter.auth import AsyncOnlyAuth, sign_request
from exporter.config import AkSkCredentials, Secret
from exporter.errors import ErrorDetail, ResponseError, TransportError
from exporter.parse import load_json

__all__ = ["DEFAULT_METADATA_URL", "MetadataAuth", "MetadataCredentialSource", "parse_securitykey"]

DEFAULT_METADATA_URL = "http://169.254.169.254"
SECURITYKEY_PATH = "/openstack/latest/securitykey"
SESSION_PATH = "/meta-data/latest/api/token"
#: The SDK's session lifetime (``_DEFAULT_TOKEN_TTL_SECONDS``), and how long it goes on
#: without one when the service offers none (``_DEFAULT_CHECK_TOKEN_DURATION_SECONDS``).
SESSION_TTL = 6 * 3600
SESSION_RECHECK = 24 * 3600.0
#: The answer of a server without an agency (the SDK's ``_CONFIG_AGENCY_ERROR``).
NO_AGENCY = "Please configure Cloud Service Agency first"
#: Session token answers that mean "this service has no sessions" (the SDK's list).
NO_SESSIONS = (404, 405, 503)
#: The SDK's refresh margin (``_DEFAULT_EXPIRATION_THRESHOLD_SECONDS``).
REFRESH_BEFORE = 40 * 60.0
#: Credentials are not signed with in their last seconds (at most a tenth of their
#: lifetime): a request signed just before the expiry arrives just after it, and its 401
#: would read as refused credentials rather than a metadata service that is down.
USE_BEFORE = 10.0


@dataclass(frozen=True)
class Temporary:
    """Credentials from the metadata service and when they expire (Unix time)."""

    credentials: AkSkCredentials
    expires_at: float
    fetched_at: float

    def refresh_at(self) -> float:
        """When to fetch new ones: ``min(40 min, half the lifetime)`` before expiry."""
        lifetime = self.expires_at - self.fetched_at
        return self.expires_at - min(REFRESH_BEFORE, lifetime / 2)

    def usable_until(self) -> float:
        """The last moment to sign with them: ``min(10 s, a tenth of the lifetime)`` before
        expiry."""
        lifetime = self.expires_at - self.fetched_at
        return self.expires_at - min(USE_BEFORE, lifetime / 10)


def _text(body: dict[str, object], *names: str) -> str:
    for name in names:
        found = body.get(name)
        if isinstance(found, str) and found.strip():
            return found.strip()
    raise ValueError(f"no {names[0]}")


def _credential_map(raw: bytes) -> dict[str, object]:
    """The object holding the credential fields: ``credential``, ``credentials`` or the top."""
    body = load_json(raw)
    if isinstance(body, dict):
        body = body.get("credential", body.get("credentials", body))
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 - reported as a bad answer
    return body


def parse_securitykey(raw: bytes, source: str) -> tuple[AkSkCredentials, float]:
    """The credentials and expiry of a securitykey answer (the field names the SDK reads);
    ``ResponseError`` naming what is missing, never a value."""
    try:
        body = _credential_map(raw)
        access = _text(body, "access", "accessKeyId", "access_key_id")
        secret = _text(body, "secret", "secretAccessKey", "secret_access_key")
        token = _text(body, "securitytoken", "securityToken", "security_token")
        expiry = _text(body, "expires_at", "expiration")
        expires_at = datetime.fromisoformat(expiry.replace("Z", "+00:00")).timestamp()
    except (ValueError, ResponseError) as error:
        detail = ErrorDetail(message=f"metadata securitykey answer unusable: {error}")
        raise ResponseError(detail, "metadata_unavailable") from None
    credentials = AkSkCredentials(
        Secret(access, source), Secret(secret, source), Secret(token, source)
    )
    return credentials, expires_at


class MetadataCredentialSource:
    """Temporary AK/SK from the metadata service at ``url``, refreshed before they expire."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        clock: Callable[[], float],
        log: structlog.typing.FilteringBoundLogger,
        retry_after: float = 30.0,
    ) -> None:
        self._http = http
        self._url = url.rstrip("/") + SECURITYKEY_PATH
        self._session_url = url.rstrip("/") + SESSION_PATH
        self._session: str | None = None
        self._session_asked: float | None = None
        self._clock = clock
        self._log = log
        self._retry_after = retry_after
        self._lock = asyncio.Lock()
        self._held: Temporary | None = None
        self._next_try = 0.0

    @property
    def expires_at(self) -> float | None:
        """When the credentials in hand expire; None before the first fetch."""
        return None if self._held is None else self._held.expires_at

    def invalidate(self, credentials: AkSkCredentials) -> None:
        """Drop ``credentials`` (ModelArts refused them): the next request fetches anew."""
        if self._held is not None and self._held.credentials is credentials:
            self._held = None
            self._next_try = 0.0

    async def current(self) -> AkSkCredentials:
        """The credentials to sign with now, fetched first when due."""
        async with self._lock:
            now = self._clock()
            held = self._held
            if held is not None and now < held.refresh_at():
                return held.credentials
            if held is not None and now < held.usable_until() and now < self._next_try:
                return held.credentials
            try:
                credentials, expires_at = await self._fetch()
            except (TransportError, ResponseError) as error:
                self._next_try = now + self._retry_after
                if held is not None and now < held.usable_until():
                    self._log.warning(
                        "metadata_refresh_failed", error=str(error), expires_at=held.expires_at
                    )
                    return held.credentials
                raise
            self._held = Temporary(credentials, expires_at, now)
            self._log.info("metadata_credentials_fetched", expires_at=expires_at)
            return credentials

    async def _fetch(self) -> tuple[AkSkCredentials, float]:
        asked = self._session_asked
        if self._session is None and (asked is None or self._clock() - asked > SESSION_RECHECK):
            await self._new_session(required=False)
        response = await self._securitykey()
        if response.status_code == 401 and NO_AGENCY not in response.text:
            await self._new_session(required=True)
            response = await self._securitykey()
        if response.status_code != 200:
            why = (
                "no agency is attached to this server"
                if NO_AGENCY in response.text
                else "is an agency attached to the server?"
            )
            detail = ErrorDetail(
                http_status=response.status_code,
                message=f"metadata service at {self._url} refused: HTTP {response.status_code}"
                f" ({why})",
            )
            raise ResponseError(detail, "metadata_unavailable")
        return parse_securitykey(response.content, f"metadata {self._url}")

    async def _securitykey(self) -> httpx.Response:
        headers = {} if self._session is None else {"X-Metadata-Token": self._session}
        return await self._send("GET", self._url, headers)

    async def _new_session(self, *, required: bool) -> None:
        """Ask for a session token; without ``required``, a service offering none is fine."""
        self._session_asked = self._clock()
        response = await self._send(
            "PUT", self._session_url, {"X-Metadata-Token-Ttl-Seconds": str(SESSION_TTL)}
        )
        self._session = None
        if response.status_code == 200 and response.text.strip():
            self._session = response.text.strip()
        elif required or response.status_code not in NO_SESSIONS:
            detail = ErrorDetail(
                http_status=response.status_code,
                message=f"metadata service at {self._session_url} gave no session token:"
                f" HTTP {response.status_code}",
            )
            raise ResponseError(detail, "metadata_unavailable")

    async def _send(self, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
        try:
            return await self._http.request(method, url, headers=headers)
        except httpx.HTTPError as exc:
            detail = ErrorDetail(
                message=f"metadata service at {url} did not answer: {type(exc).__name__}"
            )
            raise TransportError(detail, "metadata_unavailable") from None


class MetadataAuth(AsyncOnlyAuth):
    """Signs with the metadata service's temporary AK/SK and security token; a 401 drops
    them, so the next request fetches new ones."""

    def __init__(self, source: MetadataCredentialSource, clock: Callable[[], float]) -> None:
        self._source = source
        self._clock = clock

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        credentials = await self._source.current()
        sign_request(request, credentials, self._clock())
        response = yield request
        if response.status_code == 401:
            self._source.invalidate(credentials)
