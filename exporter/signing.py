"""Huawei Cloud ``SDK-HMAC-SHA256`` request signing, as pure functions.

Used on both sides: ``auth.AkSkAuth`` signs outgoing requests with it, and the simulator
verifies incoming ones with it. The algorithm (see ``docs/modelarts-api.md#signing``)::

    canonical request = METHOD \\n canonical-uri \\n canonical-query \\n
                        canonical-headers \\n signed-headers \\n hex(sha256(body))
    string to sign    = SDK-HMAC-SHA256 \\n X-Sdk-Date \\n hex(sha256(canonical request))
    signature         = hex(hmac_sha256(key=SK, string to sign))
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

__all__ = [
    "ALGORITHM",
    "DATE_FORMAT",
    "EMPTY_BODY_SHA256",
    "Authorization",
    "authorization_header",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "format_sdk_date",
    "parse_authorization",
    "parse_query",
    "sign",
]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _encode(text: str) -> str:
    """Percent-encode everything but RFC 3986 unreserved characters."""
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """Decode the path, re-encode each segment, and end it with ``/``."""
    encoded = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def parse_query(raw: str) -> list[tuple[str, str]]:
    """Split a wire query into decoded pairs. ``+`` stays a plus: Huawei encodes space as %20."""
    pairs: list[tuple[str, str]] = []
    for part in raw.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Sorted, encoded ``k=v`` pairs; the exact query that must also be sent on the wire."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    body: bytes,
) -> str:
    """The six-part canonical request; ``headers`` keys must be lower case."""
    names = sorted(signed_headers)
    header_lines = "".join(f"{name}:{headers[name].strip()}\n" for name in names)
    body_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(parse_query(query)),
            header_lines,
            ";".join(names),
            body_hash,
        ]
    )


def sign(secret_key: str, sdk_date: str, canonical: str) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed with the secret key itself."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{sdk_date}\n{digest}"
    return hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def authorization_header(access_key: str, signed_headers: Iterable[str], signature: str) -> str:
    return (
        f"{ALGORITHM} Access={access_key}, "
        f"SignedHeaders={';'.join(sorted(signed_headers))}, Signature={signature}"
    )


def format_sdk_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATE_FORMAT)


@dataclass(frozen=True)
class Authorization:
    """A parsed ``Authorization: SDK-HMAC-SHA256 …`` header."""

    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


_AUTH_RE = re.compile(
    r"^SDK-HMAC-SHA256 Access=(?P<ak>[^,\s]+), SignedHeaders=(?P<sh>[^,\s]+), "
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)


def parse_authorization(value: str) -> Authorization | None:
    """Parse the header, or None when it is not a well-formed SDK-HMAC-SHA256 header."""
    match = _AUTH_RE.match(value.strip())
    if match is None:
        return None
    return Authorization(
        access_key=match["ak"],
        signed_headers=tuple(match["sh"].split(";")),
        signature=match["sig"],
    )
