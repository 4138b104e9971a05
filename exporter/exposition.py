"""Rendered /metrics bodies, made once per snapshot and served as bytes.

Rendering 1000 pools takes tens of milliseconds (the text format is written directly, see
``exporter.textformat``; through prometheus_client it took about 300 ms); serving cached
bytes takes a few ms at most. So the text format (plain and gzip) is rendered when a snapshot is
published, and again only when some shown data reaches ``stale_after``; OpenMetrics is
rendered once per snapshot, on first demand.

A few small self-metrics about the process (``process_*``, ``python_*``) are rendered per
scrape and appended, before ``# EOF`` in OpenMetrics (whose cached part is stored without
it). For gzip, the cached part is kept compressed together with the compressor that made
it, sync-flushed: each scrape copies that compressor, compresses the small live part and
finishes the stream, so the answer is one ordinary gzip member (some clients read only the
first member of a multi-member stream).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry
from prometheus_client import exposition as text_format
from prometheus_client.openmetrics import exposition as openmetrics_format

from exporter.collector import SnapshotCollector, render_text
from exporter.models import Snapshot

__all__ = [
    "Body",
    "Exposition",
    "ExpositionCache",
    "Live",
    "process_metrics",
    "render",
    "render_openmetrics",
]

#: prometheus_client's OpenMetrics module is untyped; this is its signature.
_generate_openmetrics: Callable[[CollectorRegistry], bytes] = openmetrics_format.generate_latest

#: 0.0.4 rather than the library's newer default: every name here is a classic one, and
#: Prometheus servers older than 3.0 know 0.0.4 only.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = openmetrics_format.CONTENT_TYPE_LATEST
_EOF = b"# EOF\n"

#: Renders the per-scrape part: (openmetrics) -> bytes; OpenMetrics output ends with # EOF.
Live = Callable[[bool], bytes]


def process_metrics() -> Live:
    """prometheus_client's process, platform and GC collectors, in a registry of our own."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)

    def live(openmetrics: bool) -> bytes:
        if openmetrics:
            return _generate_openmetrics(registry)
        return text_format.generate_latest(registry)

    return live


def _no_live(openmetrics: bool) -> bytes:
    return _EOF if openmetrics else b""


@dataclass(frozen=True, slots=True)
class Body:
    """A rendered part of /metrics, plain and gzip-compressed so far (stream left open)."""

    content_type: str
    plain: bytes
    gzip_prefix: bytes
    _compressor: zlib._Compress

    def gzipped(self, tail: bytes = b"") -> tuple[bytes, bytes]:
        """One complete gzip stream of ``plain + tail``, in two parts: the cached prefix
        (not copied) and the rest; compresses only ``tail``."""
        compressor = self._compressor.copy()
        return self.gzip_prefix, compressor.compress(tail) + compressor.flush()


@dataclass(frozen=True, slots=True)
class Exposition:
    """One snapshot rendered as seen at ``rendered_at``; valid until ``expires_at``."""

    snapshot: Snapshot
    rendered_at: float
    text: Body
    expires_at: float | None


def _body(content_type: str, plain: bytes) -> Body:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip wrapper
    prefix = compressor.compress(plain) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return Body(content_type, plain, prefix, compressor)


def _registry(snapshot: Snapshot, now: float) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, now))
    return registry


def render(snapshot: Snapshot, now: float) -> Exposition:
    """The text format, rendered once."""
    text = render_text(snapshot, now)
    return Exposition(snapshot, now, _body(TEXT_CONTENT_TYPE, text), snapshot.expires_at(now))


def render_openmetrics(exposition: Exposition) -> Body:
    """The OpenMetrics format of the same snapshot at the same instant, without ``# EOF``."""
    registry = _registry(exposition.snapshot, exposition.rendered_at)
    rendered = _generate_openmetrics(registry)
    return _body(OPENMETRICS_CONTENT_TYPE, rendered.removesuffix(_EOF))


class ExpositionCache:
    """Holds the current ``Exposition``; swapped whole, read without locks.

    The OpenMetrics body is rendered on the first request that asks for it and then kept
    for that exposition: most Prometheus setups never ask, so it costs nothing there.
    """

    def __init__(
        self, initial: Snapshot, clock: Callable[[], float], live: Live = _no_live
    ) -> None:
        self._clock = clock
        self._live = live
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
        """The cached part to serve now in the format asked for."""
        exposition = self.current()
        if not openmetrics:
            return exposition.text
        with self._lock:
            if self._openmetrics is None or self._openmetrics[0] is not exposition:
                self._openmetrics = (exposition, render_openmetrics(exposition))
            return self._openmetrics[1]

    def payload(self, openmetrics: bool, gzipped: bool) -> tuple[str, tuple[bytes, ...]]:
        """(content type, parts) of a whole /metrics answer, to be sent one after the other:
        the cached part, never copied (megabytes at 1000 pools), then the live part."""
        body = self.body(openmetrics)
        live = self._live(openmetrics)
        if gzipped:
            return body.content_type, body.gzipped(live)
        return body.content_type, (body.plain, live)
