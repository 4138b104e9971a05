"""The instance metadata service's ``GET /openstack/latest/securitykey``: temporary AK/SK
and security token of the server's agency, expiring after ``lifetime`` seconds by the
simulator clock, and replaced by new ones once half their lifetime has passed (each set
stays accepted until it expires, as the real service's do). ``available=False`` makes the
service answer 503, as when no agency is attached, or stand for one that is down."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter.simulator.verify import _Verifier
from exporter.simulator.wire import _json, _Response

__all__ = ["Agency"]


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
        self._issued: _Issued | None = None
        self._count = 0

    def configure(self, *, lifetime: float | None = None, available: bool | None = None) -> None:
        """Change how long new credentials last, or whether the service answers."""
        with self._lock:
            if lifetime is not None:
                self._lifetime = lifetime
            if available is not None:
                self._available = available

    @property
    def issued(self) -> int:
        """How many credential sets were minted so far."""
        return self._count

    def answer(self) -> _Response:
        """The securitykey answer now: the current set, a new one past half its lifetime."""
        now = self._clock()
        with self._lock:
            if not self._available:
                return _json(503, {"error": "metadata service unavailable"})
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
