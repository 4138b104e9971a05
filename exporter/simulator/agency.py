"""The instance metadata service's ``GET /openstack/latest/securitykey``: temporary AK/SK
and security token of the server's agency, expiring after ``lifetime`` seconds by the
simulator clock, and replaced by new ones once half their lifetime has passed (each set
stays accepted until it expires, as the real service's do).

``PUT /meta-data/latest/api/token`` (header ``X-Metadata-Token-Ttl-Seconds``, 1 to 21600)
answers a session token, valid for that many seconds; with ``require_token=True`` the
securitykey answer needs one in ``X-Metadata-Token`` and is 401 without, as a hardened
metadata service's is. ``attached=False`` answers 401 "Please configure Cloud Service Agency
first", as for a server without an agency; ``available=False`` answers 503, a service
that is down."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter.simulator.verify import _Verifier
from exporter.simulator.wire import _json, _Response

__all__ = ["Agency"]


#: What the metadata service says when no agency is attached to the server (the official
#: SDK's ``MetadataAccessor._CONFIG_AGENCY_ERROR``).
NO_AGENCY = "Please configure Cloud Service Agency first"
MAX_TOKEN_TTL = 21600


@dataclass(frozen=True)
class _Issued:
    access_key: str
    secret_key: str
    token: str
    issued_at: float
    expires_at: float


class Agency:
    """Mints temporary credentials for the metadata endpoint and registers them."""

    def __init__(self, verifier: _Verifier, clock: Callable[[], float]) -> None:
        self._verifier = verifier
        self._clock = clock
        self._lock = threading.Lock()
        self._lifetime = 3600.0
        self._available = True
        self._attached = True
        self._require_token = False
        self._sessions: dict[str, float] = {}
        self._issued: _Issued | None = None
        self._count = 0

    def configure(
        self,
        *,
        lifetime: float | None = None,
        available: bool | None = None,
        attached: bool | None = None,
        require_token: bool | None = None,
    ) -> None:
        """Change how long new credentials last, whether the service answers, whether an
        agency is attached, or whether a session token is required."""
        with self._lock:
            if lifetime is not None:
                self._lifetime = lifetime
            if available is not None:
                self._available = available
            if attached is not None:
                self._attached = attached
            if require_token is not None:
                self._require_token = require_token
                self._sessions.clear()

    def session(self, ttl: str | None) -> _Response:
        """``PUT /meta-data/latest/api/token``: a session token valid ``ttl`` seconds."""
        if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TOKEN_TTL:
            wanted = f"X-Metadata-Token-Ttl-Seconds must be 1 to {MAX_TOKEN_TTL}"
            return _json(400, {"error": wanted})
        with self._lock:
            if not self._available:
                return _json(503, {"error": "metadata service unavailable"})
            token = f"metadata-session-{len(self._sessions) + 1:06d}"
            self._sessions[token] = self._clock() + int(ttl)
        return _Response(200, token.encode())

    @property
    def issued(self) -> int:
        """How many credential sets were minted so far."""
        return self._count

    def answer(self, token: str | None) -> _Response:
        """The securitykey answer now: the current set, a new one past half its lifetime."""
        now = self._clock()
        with self._lock:
            if not self._available:
                return _json(503, {"error": "metadata service unavailable"})
            if self._require_token and now >= self._sessions.get(token or "", 0.0):
                return _json(401, {"error": "Unauthorized: a valid X-Metadata-Token is needed"})
            if not self._attached:
                return _json(401, {"error": NO_AGENCY})
            held = self._issued
            if held is None or now >= held.issued_at + (held.expires_at - held.issued_at) / 2:
                self._count += 1
                held = _Issued(
                    access_key=f"TEMPAK{self._count:014d}",
                    secret_key=f"temporary-secret-{self._count}",
                    token=f"temporary-security-token-{self._count}",
                    issued_at=now,
                    expires_at=now + self._lifetime,
                )
                self._issued = held
                self._verifier.add_temporary(
                    held.access_key, held.secret_key, held.token, held.expires_at
                )
        expires = datetime.fromtimestamp(held.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        credential = {
            "access": held.access_key,
            "secret": held.secret_key,
            "securitytoken": held.token,
            "expires_at": expires,
        }
        return _json(200, {"credential": credential})
