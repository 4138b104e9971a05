"""Reading a decoded YAML mapping with key paths, for the config and the web config.

Every error is a :class:`~exporter.errors.ConfigError` naming the key path
(``targets[0].project_id``), so that a bad file exits 2 saying where.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, TypeVar

from exporter.errors import ConfigError
from exporter.models import LONE_SURROGATE

__all__ = ["Section", "join_path", "string"]

_MISSING: Any = object()
T = TypeVar("T")


def string(value: object, path: str) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, "expected a non-empty string")
    if LONE_SURROGATE.search(value):
        # YAML's "\ud800" escape: such a string cannot be a label value (or sent at all).
        raise ConfigError(path, "contains a lone surrogate, which UTF-8 cannot encode")
    return value.strip()


def join_path(path: str, key: str) -> str:
    """``path.key``, or ``key`` at the top level."""
    key = key or '""'  # an empty key must still show in the path
    return f"{path}.{key}" if path else key


class Section:
    """A mapping being read with its key path. Keys outside ``keys`` are refused before any
    value is read, so a misspelt key is reported as such, not as a missing default."""

    def __init__(self, data: object, path: str, keys: Collection[str]) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(path or "(top level)", "expected a mapping")
        self.data: dict[Any, Any] = data
        self.path = path
        self.only(keys)

    def only(self, keys: Collection[str]) -> None:
        """Refuse every key not in ``keys``. A key with a ':' in it is shown only up to the
        ':': ``secret_key:VALUE`` (no space after the colon) is one YAML key, with the
        secret in it."""
        for key in self.data:
            if key not in keys:
                name, colon, _ = str(key).partition(":")
                if colon:
                    raise ConfigError(
                        self.at(name),
                        "unknown key: a ':' without a space after it (the rest is not shown)",
                    )
                raise ConfigError(self.at(str(key)), "unknown key")

    def at(self, key: str) -> str:
        return join_path(self.path, key)

    def take(self, key: str, convert: Callable[[object, str], T], default: T = _MISSING) -> T:
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                raise ConfigError(self.at(key), "is required")
            return default
        return convert(self.data[key], self.at(key))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None
