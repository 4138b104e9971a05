"""Rendered /metrics bodies, made once per snapshot and served as bytes.

Rendering 1000 pools with prometheus_client takes on the order of 300 ms; serving cached bytes
takes a few ms at most. So the text format (plain and gzip) is rendered when a snapshot is
published, and again only when some shown data reaches ``stale_after``; OpenMetrics is
rendered once per snapshot, on first demand.
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

__all__ = ["Body", "Exposition", "ExpositionCache", "render", "render_openmetrics"]

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
    """One snapshot rendered as seen at ``rendered_at``; valid until ``expires_at``."""

    snapshot: Snapshot
    rendered_at: float
    text: Body
    expires_at: float | None


def _body(content_type: str, plain: bytes) -> Body:
    return Body(content_type, plain, gzip.compress(plain, compresslevel=6, mtime=0))


def _registry(snapshot: Snapshot, now: float) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, now))
    return registry


def render(snapshot: Snapshot, now: float) -> Exposition:
    """The text format, rendered once."""
    text = text_format.generate_latest(_registry(snapshot, now))
    return Exposition(snapshot, now, _body(TEXT_CONTENT_TYPE, text), snapshot.expires_at(now))


def render_openmetrics(exposition: Exposition) -> Body:
    """The OpenMetrics format of the same snapshot at the same instant."""
    registry = _registry(exposition.snapshot, exposition.rendered_at)
    return _body(OPENMETRICS_CONTENT_TYPE, _generate_openmetrics(registry))


class ExpositionCache:
    """Holds the current ``Exposition``; swapped whole, read without locks.

    The OpenMetrics body is rendered on the first request that asks for it and then kept
    for that exposition: most Prometheus setups never ask, so it costs nothing there.
    """

    def __init__(self, initial: Snapshot, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._current = render(initial, clock())
        self._openmetrics: tuple[Exposition, Body] | None = None

    def publish(self, snapshot: Snapshot) -> None:
        """Render ``snapshot`` and make it the one served."""
        rendered = render(snapshot, self._clock())
        with self._lock:
            self._current = rendered
            self._openmetrics = None

    def current(self) -> Exposition:
        """The exposition to serve now; re-rendered first if shown data has gone stale."""
        current = self._current
        if current.expires_at is None or self._clock() < current.expires_at:
            return current
        with self._lock:
            if self._current is current:
                self._current = render(current.snapshot, self._clock())
            return self._current

    def body(self, openmetrics: bool) -> Body:
        """The body to serve now in the format asked for."""
        exposition = self.current()
        if not openmetrics:
            return exposition.text
        with self._lock:
            if self._openmetrics is None or self._openmetrics[0] is not exposition:
                self._openmetrics = (exposition, render_openmetrics(exposition))
            return self._openmetrics[1]
