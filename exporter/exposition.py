"""Rendered /metrics bodies, made once per snapshot and served as bytes.

Rendering 1000 pools with prometheus_client takes on the order of 100 ms; serving cached bytes
takes well under 1 ms. So the text (and its gzip, and the OpenMetrics variants) is rendered
when a snapshot is published, and again only when some shown data reaches ``stale_after``.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_format
from prometheus_client.openmetrics import exposition as openmetrics_format

from exporter.collector import SnapshotCollector
from exporter.models import Snapshot

__all__ = ["Body", "Exposition", "ExpositionCache", "render"]

#: prometheus_client's OpenMetrics module is untyped; this is its signature.
_generate_openmetrics: Callable[[CollectorRegistry], bytes] = openmetrics_format.generate_latest

#: 0.0.4 rather than the library's newer default: every name here is a classic one, and
#: Prometheus servers older than 3.0 know 0.0.4 only.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = openmetrics_format.CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True)
class Body:
    content_type: str
    plain: bytes
    gzipped: bytes


@dataclass(frozen=True, slots=True)
class Exposition:
    """One snapshot rendered in both formats; valid until ``expires_at`` (Unix time)."""

    snapshot: Snapshot
    text: Body
    openmetrics: Body
    expires_at: float | None


def _body(content_type: str, plain: bytes) -> Body:
    return Body(content_type, plain, gzip.compress(plain, compresslevel=6, mtime=0))


def render(snapshot: Snapshot, now: float) -> Exposition:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, now))
    return Exposition(
        snapshot=snapshot,
        text=_body(TEXT_CONTENT_TYPE, text_format.generate_latest(registry)),
        openmetrics=_body(OPENMETRICS_CONTENT_TYPE, _generate_openmetrics(registry)),
        expires_at=snapshot.expires_at(now),
    )


class ExpositionCache:
    """Holds the current ``Exposition``; swapped whole, read without locks."""

    def __init__(self, initial: Snapshot, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._current = render(initial, clock())

    def publish(self, snapshot: Snapshot) -> None:
        """Render ``snapshot`` and make it the one served."""
        rendered = render(snapshot, self._clock())
        with self._lock:
            self._current = rendered

    def current(self) -> Exposition:
        """The exposition to serve now; re-rendered first if shown data has gone stale."""
        current = self._current
        if current.expires_at is None or self._clock() < current.expires_at:
            return current
        with self._lock:
            if self._current is current:
                self._current = render(current.snapshot, self._clock())
            return self._current
