"""Who may call the simulated APIs: IAM tokens, SDK-HMAC-SHA256 signatures, key lockout.

Signatures are verified with :mod:`exporter.signing` over the raw path and query exactly as
received; the wire query must already be the canonical one. More than
:data:`LOCKOUT_THRESHOLD` consecutive failures lock an access key for
:data:`LOCKOUT_SECONDS` of the injected clock.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter import signing
from exporter.simulator.wire import _dig, _format_number, _iam_error, _json, _Request, _Response

__all__ = ["LOCKOUT_SECONDS", "LOCKOUT_THRESHOLD", "SDK_DATE_TOLERANCE_SECONDS"]

LOCKOUT_THRESHOLD = 5
"""More than this many consecutive signature failures lock an access key."""
LOCKOUT_SECONDS = 300.0
SDK_DATE_TOLERANCE_SECONDS = 900.0

_IAM_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class _Token:
    project_id: str
    expires_at: float


@dataclass
class _KeyHealth:
    failures: int = 0
    locked_until: float | None = None


class _AuthFailure(Exception):
    """Credentials refused; the message is the short reason."""


def _iam_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime(_IAM_TIME_FORMAT)


class _Verifier:
    """The credentials the simulator accepts, the tokens it issued, each key's failures.

    Arguments as for :class:`~exporter.simulator.Simulator`; ``lock`` is the simulator's
    lock, held around every change to the tokens and key health kept here.
    """

    def __init__(
        self,
        *,
        access_keys: Mapping[str, str],
        security_tokens: Mapping[str, str],
        iam_users: Mapping[tuple[str, str], str],
        token_lifetime_seconds: float,
        clock: Callable[[], float],
        lock: threading.Lock,
    ) -> None:
        self._access_keys = dict(access_keys)
        self._security_tokens = dict(security_tokens)
        #: access key -> when it stops being accepted (temporary credentials only)
        self._expiry: dict[str, float] = {}
        self._iam_users = dict(iam_users)
        self._token_lifetime = float(token_lifetime_seconds)
        self._clock = clock
        self._lock = lock
        self._tokens: dict[str, _Token] = {}
        self._keys: dict[str, _KeyHealth] = {}

    def issue_token(self, request: _Request) -> _Response:
        """``POST /v3/auth/tokens``: a project-scoped token for a known user, else IAM's error."""
        try:
            data: object = json.loads(request.body)
        except ValueError:
            data = None
        identity = _dig(data, "auth", "identity")
        methods = _dig(identity, "methods")
        user = _dig(identity, "password", "user")
        name, password = _dig(user, "name"), _dig(user, "password")
        domain = _dig(user, "domain", "name")
        project_id = _dig(data, "auth", "scope", "project", "id")
        if not (
            isinstance(methods, list)
            and "password" in methods
            and isinstance(name, str)
            and isinstance(password, str)
            and isinstance(domain, str)
            and isinstance(project_id, str)
            and project_id
        ):
            return _iam_error(400, "Bad Request", "The request body is invalid.")
        expected = self._iam_users.get((domain, name))
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return _iam_error(401, "Unauthorized", "The username or password is wrong.")
        now = self._clock()
        expires_at = now + self._token_lifetime
        token = "MII" + secrets.token_urlsafe(96)
        with self._lock:
            self._tokens[token] = _Token(project_id, expires_at)
        body = {
            "token": {
                "expires_at": _iam_time(expires_at),
                "issued_at": _iam_time(now),
                "methods": ["password"],
                "project": {"id": project_id},
                "user": {"name": name, "domain": {"name": domain}},
            }
        }
        return _json(201, body, {"X-Subject-Token": token})

    def authenticate(self, request: _Request, project_id: str) -> None:
        """Raise ``_AuthFailure`` unless the request carries valid credentials."""
        token = request.headers.get("x-auth-token")
        if token is not None:
            with self._lock:
                issued = self._tokens.get(token)
            if issued is None:
                raise _AuthFailure("the token is invalid")
            if self._clock() >= issued.expires_at:
                raise _AuthFailure("the token has expired")
            if issued.project_id != project_id:
                raise _AuthFailure("the token is not scoped to this project")
            return
        header = request.headers.get("authorization")
        if header is None:
            raise _AuthFailure("no X-Auth-Token or Authorization header")
        parsed = signing.parse_authorization(header)
        if parsed is None:
            raise _AuthFailure("malformed SDK-HMAC-SHA256 Authorization header")
        secret_key = self._access_keys.get(parsed.access_key)
        if secret_key is None:
            raise _AuthFailure("unknown access key")
        now = self._clock()
        expires_at = self._expiry.get(parsed.access_key)
        if expires_at is not None and now >= expires_at:
            raise _AuthFailure("the security token has expired")
        with self._lock:
            health = self._keys.setdefault(parsed.access_key, _KeyHealth())
            if health.locked_until is not None:
                if now < health.locked_until:
                    left = _format_number(round(health.locked_until - now))
                    raise _AuthFailure(
                        f"the access key is locked after too many failures; retry in {left} s"
                    )
                health.locked_until = None
                health.failures = 0
        try:
            self._verify_signature(request, parsed, secret_key, now)
        except _AuthFailure:
            with self._lock:
                health.failures += 1
                if health.failures > LOCKOUT_THRESHOLD:
                    health.locked_until = now + LOCKOUT_SECONDS
                    health.failures = 0
            raise
        with self._lock:
            health.failures = 0

    def _verify_signature(
        self, request: _Request, parsed: signing.Authorization, secret_key: str, now: float
    ) -> None:
        signed = parsed.signed_headers
        if "host" not in signed or "x-sdk-date" not in signed:
            raise _AuthFailure("host and x-sdk-date must be signed")
        missing = [name for name in signed if name not in request.headers]
        if missing:
            raise _AuthFailure(f"signed header {missing[0]} is missing")
        sdk_date = request.headers["x-sdk-date"]
        try:
            moment = datetime.strptime(sdk_date, signing.DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise _AuthFailure("malformed X-Sdk-Date") from None
        if abs(now - moment.timestamp()) > SDK_DATE_TOLERANCE_SECONDS:
            raise _AuthFailure("X-Sdk-Date is more than 15 minutes from server time")
        expected_token = self._security_tokens.get(parsed.access_key)
        sent_token = request.headers.get("x-security-token")
        if expected_token is not None:
            if sent_token is None or not hmac.compare_digest(
                expected_token.encode(), sent_token.encode()
            ):
                raise _AuthFailure("X-Security-Token is missing or wrong")
            if "x-security-token" not in signed:
                raise _AuthFailure("X-Security-Token must be signed")
        elif sent_token is not None:
            raise _AuthFailure("X-Security-Token sent with a permanent access key")
        if request.query != signing.canonical_query(signing.parse_query(request.query)):
            raise _AuthFailure("the query string is not in canonical form (sorted, encoded)")
        canonical = signing.canonical_request(
            request.method, request.path, request.query, request.headers, signed, request.body
        )
        expected = signing.sign(secret_key, sdk_date, canonical)
        if not hmac.compare_digest(expected, parsed.signature):
            raise _AuthFailure("verify aksk signature fail")

    def add_temporary(
        self, access_key: str, secret_key: str, token: str, expires_at: float
    ) -> None:
        """Accept temporary credentials (an agency's, from the metadata service) until
        ``expires_at`` by the simulator clock."""
        with self._lock:
            self._access_keys[access_key] = secret_key
            self._security_tokens[access_key] = token
            self._expiry[access_key] = expires_at

    def set_access_keys(self, access_keys: Mapping[str, str]) -> None:
        """Accept these AK → SK pairs from now on, and only these (a key rotation)."""
        with self._lock:
            self._access_keys = dict(access_keys)

    def is_locked(self, access_key: str) -> bool:
        """Whether ``access_key`` is locked out now (by the simulator clock)."""
        now = self._clock()
        with self._lock:
            health = self._keys.get(access_key)
            return bool(health and health.locked_until is not None and now < health.locked_until)

    def failure_count(self, access_key: str) -> int:
        """Consecutive authentication failures of ``access_key`` since its last success."""
        with self._lock:
            health = self._keys.get(access_key)
            return health.failures if health else 0
