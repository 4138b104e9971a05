"""structlog setup: JSON lines (default when stdout is not a TTY) or a console renderer.

The logger is built and passed in, not configured globally. ``snake_case`` event names,
UTC ISO timestamps. A last processor replaces any configured secret value that still made it
into an event with ``***`` — secrets are never logged on purpose; this catches accidents.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

__all__ = ["LEVELS", "SecretScrubber", "make_logger"]

LEVELS = ("debug", "info", "warning", "error")
#: Values shorter than this are not scrubbed: they would match ordinary text.
MIN_SECRET_LENGTH = 6


class SecretScrubber:
    """A processor that masks known secret values wherever they appear in string values."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        if self._secrets:
            for key, value in event.items():
                event[key] = self._scrub(value)
        return event

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, "***")
            return value
        if isinstance(value, MutableMapping):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        return value


def make_logger(
    level: str = "info",
    fmt: str | None = None,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> FilteringBoundLogger:
    """A logger writing to ``stream`` (stdout) at ``level`` in ``fmt`` (json|console)."""
    out = stream or sys.stdout
    if fmt is None:
        fmt = "console" if out.isatty() else "json"
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    processors: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        processors.append(structlog.processors.format_exc_info)
    processors += [SecretScrubber(secrets), renderer]
    logger: FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    return logger
