"""``httpx.Auth`` implementations for ModelArts.

- ``AkSkAuth`` signs each request with ``SDK-HMAC-SHA256`` (``exporter.signing``), adding
  ``X-Security-Token`` for temporary credentials before signing. It rewrites the URL's query
  into the canonical form, so the query that was signed is exactly the one sent.
- ``IamTokenAuth`` sends ``X-Auth-Token`` from an ``IamTokenSource``, which exchanges an IAM
  user's password for a token (``POST /v3/auth/tokens``), caches it and fetches a new one
  shortly before expiry, or on the next request after ModelArts refused it. Every answer
  from IAM is reported to ``observe(status)`` (the exporter counts them as ``iam_tokens``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import UTC, datetime
from typing import TypeVar

import httpx

from exporter import signing
from exporter.config import AkSkCredentials, PasswordCredentials
from exporter.errors import ApiError, AuthError, ErrorDetail, ResponseError, TransportError
from exporter.parse import error_fields, load_json

__all__ = ["AkSkAuth", "AsyncOnlyAuth", "IamTokenAuth", "IamTokenSource", "sign_request"]

Clock = Callable[[], float]
T = TypeVar("T")

#: Headers signed when present. ``host`` and ``x-sdk-date`` are always present.
_SIGNED = ("content-type", "host", "x-project-id", "x-sdk-date", "x-security-token")


def sign_request(request: httpx.Request, credentials: AkSkCredentials, now: float) -> None:
    """Sign ``request`` in place (query canonicalised, date and Authorization headers set).

    The query is read as httpx encodes it (``params=`` writes a space as ``+``, a plus as
    ``%2B``), then re-sent in canonical form, where a space is ``%20``.
    """
    query = signing.canonical_query(request.url.params.multi_items())
    request.url = request.url.copy_with(query=query.encode("ascii") if query else None)
    request.headers["X-Sdk-Date"] = signing.format_sdk_date(datetime.fromtimestamp(now, UTC))
    if credentials.security_token is not None:
        request.headers["X-Security-Token"] = credentials.security_token.reveal()
    headers = {name: request.headers[name] for name in _SIGNED if name in request.headers}
    canonical = signing.canonical_request(
        request.method,
        request.url.raw_path.split(b"?")[0].decode("ascii"),
        query,
        headers,
        headers.keys(),
        request.content,
    )
    signature = signing.sign(credentials.secret_key.reveal(), headers["x-sdk-date"], canonical)
    request.headers["Authorization"] = signing.authorization_header(
        credentials.access_key.reveal(), headers.keys(), signature
    )


def _current(credentials: T | Callable[[], T]) -> Callable[[], T]:
    """Fixed credentials, or a function giving those to use now (``RotatingCredentials``)."""
    if callable(credentials):
        return credentials
    return lambda: credentials


def _nothing() -> None:
    return None


class AkSkAuth(httpx.Auth):
    """Signs every request with the AK/SK; needs no I/O, so works for sync and async clients.
    ``credentials`` may be a function, asked for the credentials to use at each request;
    ``refused`` is called when ModelArts answers 401 (never a retry)."""

    def __init__(
        self,
        credentials: AkSkCredentials | Callable[[], AkSkCredentials],
        clock: Clock,
        refused: Callable[[], None] = _nothing,
    ) -> None:
        self._credentials = _current(credentials)
        self._clock = clock
        self._refused = refused

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sign_request(request, self._credentials(), self._clock())
        response = yield request
        if response.status_code == 401:
            self._refused()


def _expiry(body: object) -> float | None:
    token = body.get("token") if isinstance(body, dict) else None
    raw = token.get("expires_at") if isinstance(token, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class IamTokenSource:
    """Fetches and caches an IAM project-scoped token for one target.

    A token is reused until ``refresh_margin`` seconds before it expires. Concurrent callers
    share one fetch. A refused password raises ``AuthError`` and is not retried; ``refused``
    is called, so a password file is read again before the next fetch.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        iam_endpoint: str,
        project_id: str,
        credentials: PasswordCredentials | Callable[[], PasswordCredentials],
        clock: Clock,
        refresh_margin: float = 3600.0,
        observe: Callable[[str], None] = lambda status: None,
        refused: Callable[[], None] = _nothing,
    ) -> None:
        self._http = http
        self._observe = observe
        self._refused = refused
        self._url = f"{iam_endpoint}/v3/auth/tokens"
        self._project_id = project_id
        self._credentials = _current(credentials)
        self._clock = clock
        self._margin = refresh_margin
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    @property
    def expires_at(self) -> float | None:
        """When the token in hand expires; None without one."""
        return None if self._token is None else self._expires_at

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (ModelArts refused it); the next ``token()`` fetches a new one."""
        if token == self._token:
            self._token = None

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self._margin:
                self._token, self._expires_at = await self._fetch()
            return self._token

    def _request_body(self) -> dict[str, object]:
        c = self._credentials()
        user = {"name": c.user, "password": c.password.reveal(), "domain": {"name": c.domain}}
        return {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": user}},
                "scope": {"project": {"id": self._project_id}},
            }
        }

    async def _fetch(self) -> tuple[str, float]:
        try:
            response = await self._http.post(self._url, json=self._request_body())
        except httpx.TimeoutException:
            self._observe("none")
            raise TransportError(
                ErrorDetail(message="IAM token request timed out"), "timeout"
            ) from None
        except httpx.HTTPError as exc:
            self._observe("none")
            detail = ErrorDetail(message=f"IAM token request failed: {type(exc).__name__}")
            raise TransportError(detail, "connect_error") from None
        self._observe(str(response.status_code))
        request_id = response.headers.get("X-Request-Id")
        if response.status_code != 201:
            code, message = error_fields(_json_or_none(response.content))
            detail = ErrorDetail(
                http_status=response.status_code,
                error_code=code,
                message=f"IAM token request refused: {message}".rstrip(": "),
                request_id=request_id,
            )
            if response.status_code in (401, 403):
                self._refused()
                raise AuthError(detail)
            raise ApiError(detail)
        token = response.headers.get("X-Subject-Token")
        expires_at = _expiry(_json_or_none(response.content))
        if not token or expires_at is None:
            detail = ErrorDetail(
                http_status=201,
                message="IAM answered without X-Subject-Token or token.expires_at",
                request_id=request_id,
            )
            raise ResponseError(detail)
        return token, expires_at


def _json_or_none(raw: bytes) -> object:
    try:
        return load_json(raw)
    except ResponseError:
        return None


class AsyncOnlyAuth(httpx.Auth):
    """An auth whose flow awaits I/O (a token or credentials fetched): async clients only."""

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError(f"{type(self).__name__} needs an httpx.AsyncClient")
        yield request  # pragma: no cover - makes this a generator


class IamTokenAuth(AsyncOnlyAuth):
    """Adds ``X-Auth-Token``; on a 401 the token is dropped so the next cycle fetches anew."""

    def __init__(self, source: IamTokenSource) -> None:
        self._source = source

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._source.token()
        request.headers["X-Auth-Token"] = token
        response = yield request
        if response.status_code == 401:
            self._source.invalidate(token)
