"""The exporter's exceptions.

::

    ExporterError
    ├── ConfigError            bad configuration: names the key path; the CLI exits 2
    └── PollError              one poll of one item failed; carries what the operator needs
        ├── ApiError           ModelArts answered with an error (HTTP >= 400, or is_success: false)
        │   ├── AuthError      401/403: never retried; the target waits for the next interval
        │   ├── ThrottledError 429: retried after Retry-After (or a backoff)
        │   └── NotFoundError  404; ``pool_gone`` when the code is ModelArts.50015001
        ├── TransportError     timeout, refused or reset connection, DNS failure
        └── ResponseError      the body is not what the API documents (JSON, types, size)

Every ``PollError`` has a short, bounded ``code`` for the ``code`` label of the error counter:
the ModelArts error code when the body had a well-formed one, otherwise one of the
``exporter``-chosen words listed in ``LOCAL_CODES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Self

__all__ = [
    "DEADLINE_EXCEEDED",
    "LOCAL_CODES",
    "POOL_NOT_FOUND",
    "ApiError",
    "AuthError",
    "ConfigError",
    "ErrorDetail",
    "ExporterError",
    "NotFoundError",
    "PollError",
    "ResponseError",
    "ThrottledError",
    "TransportError",
    "safe_error_code",
]

POOL_NOT_FOUND = "ModelArts.50015001"
#: A poll the cycle's deadline cut before any answer (``models.CallLimits``).
DEADLINE_EXCEEDED = "deadline_exceeded"

LOCAL_CODES = (
    "timeout",
    "connect_error",
    "transport_error",
    DEADLINE_EXCEEDED,
    "invalid_json",
    "invalid_response",
    "invalid_field",
    "response_too_large",
    "unsupported_encoding",
    "invalid_encoding",
    "http_error",
    "skipped_auth_failure",
    "skipped_auth_backoff",
    "skipped_unreachable",
    "internal_error",
)

_CODE_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,15}(\.[A-Za-z0-9]{1,20}){1,3}$")


def safe_error_code(raw: object) -> str | None:
    """Return ``raw`` if it looks like a Huawei error code (``ModelArts.50015001``), else None.

    Codes become label values, so anything that is not code-shaped is refused here rather
    than allowed to grow the series count.
    """
    if isinstance(raw, str) and len(raw) <= 36 and _CODE_SHAPE.match(raw):
        return raw
    return None


class ExporterError(Exception):
    """Base class of every error the exporter raises on purpose."""


class ConfigError(ExporterError):
    """A configuration problem at ``path`` (``targets[0].project_id``)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


@dataclass(frozen=True)
class ErrorDetail:
    """What is known about a failed call, for logs and metrics."""

    http_status: int | None = None
    error_code: str | None = None
    message: str = ""
    request_id: str | None = None


class PollError(ExporterError):
    """A poll failed; ``detail`` says how. ``code`` is the bounded metric label value."""

    local_code = "http_error"

    def __init__(self, detail: ErrorDetail) -> None:
        self.detail = detail
        super().__init__(self._describe())

    @property
    def code(self) -> str:
        return self.detail.error_code or self.local_code

    @property
    def retryable(self) -> bool:
        """Whether another attempt within this poll could succeed."""
        return False

    def with_context(self, http_status: int | None, request_id: str | None) -> Self:
        """A copy that also names the HTTP status and request id of the call."""
        # Not copy.copy(): an exception is copied by calling its class with ``args`` (the
        # message), which these constructors do not take.
        twin = type(self).__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.detail = replace(self.detail, http_status=http_status, request_id=request_id)
        Exception.__init__(twin, twin._describe())
        return twin

    def _describe(self) -> str:
        d = self.detail
        parts = [d.message or type(self).__name__]
        if d.http_status is not None:
            parts.append(f"http_status={d.http_status}")
        if d.error_code:
            parts.append(f"error_code={d.error_code}")
        if d.request_id:
            parts.append(f"request_id={d.request_id}")
        return " ".join(parts)


class ApiError(PollError):
    """ModelArts (or the API gateway in front of it) answered with an error."""

    @property
    def retryable(self) -> bool:
        status = self.detail.http_status or 0
        return status >= 500


class AuthError(ApiError):
    """401 or 403: the credentials were refused. Never retried (AK/SK lockout)."""

    @property
    def retryable(self) -> bool:
        return False


class ThrottledError(ApiError):
    """429: the API gateway throttled us; ``retry_after`` seconds if it said."""

    def __init__(self, detail: ErrorDetail, retry_after: float | None) -> None:
        self.retry_after = retry_after
        super().__init__(detail)

    @property
    def retryable(self) -> bool:
        return True


class NotFoundError(ApiError):
    """404. ``pool_gone`` when ModelArts says the pool does not exist."""

    @property
    def pool_gone(self) -> bool:
        return self.detail.error_code == POOL_NOT_FOUND


class TransportError(PollError):
    """No HTTP answer: timeout, refused or reset connection, name resolution failure."""

    def __init__(self, detail: ErrorDetail, local_code: str) -> None:
        self.local_code = local_code
        super().__init__(detail)

    @property
    def retryable(self) -> bool:
        return True


class ResponseError(PollError):
    """A 2xx body that is not what the API documents."""

    def __init__(self, detail: ErrorDetail, local_code: str = "invalid_response") -> None:
        self.local_code = local_code
        super().__init__(detail)
