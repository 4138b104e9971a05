"""Reading a decoded YAML mapping with key paths, for the config and the web config:
``Section`` (a mapping, its known keys), the readers of values (strings, durations,
numbers, lists, URLs, regular expressions) and ``${VAR}`` expansion.

Every error is a :class:`~exporter.errors.ConfigError` naming the key path
(``targets[0].project_id``), so that a bad file exits 2 saying where.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from exporter.errors import ConfigError
from exporter.models import LONE_SURROGATE

__all__ = [
    "Section",
    "expand_environment",
    "join_path",
    "parse_duration",
    "patterns",
    "positive_int",
    "positive_number",
    "string",
    "string_list",
    "url",
    "word",
]

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


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _float(value: int | float) -> float:
    """``float(value)``; infinite for an integer beyond the float range (YAML allows any)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def parse_duration(value: object, path: str) -> float:
    """``30s``, ``5m``, ``1h``, ``500ms`` or a plain number of seconds; must be > 0."""
    if isinstance(value, bool):
        raise ConfigError(path, "expected a duration like 30s, 5m or 60")
    if isinstance(value, int | float):
        seconds = _float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())):
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    else:
        raise ConfigError(path, f"expected a duration like 30s, 5m or 60, got {value!r}")
    if not math.isfinite(seconds):
        raise ConfigError(path, f"must be a finite duration, got {value!r}")
    if seconds <= 0:
        raise ConfigError(path, "must be greater than zero")
    return seconds


def positive_int(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(path, f"expected a whole number >= 1, got {value!r}")
    return value


def positive_number(value: object, path: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(_float(value))
        or value <= 0
    ):
        raise ConfigError(path, f"expected a number > 0, got {value!r}")
    return float(value)


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(text: str, environ: Mapping[str, str], path: str) -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}``; ``$$`` is a literal ``$``.

    As in the shell, ``:-`` uses the default when the variable is unset or empty.
    """

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, default = match[1], match[2]
        if environ.get(name) or (name in environ and default is None):
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(path or "(top level)", f"environment variable {name} is not set")

    return _VAR.sub(replace, text)


def expand_environment(node: object, environ: Mapping[str, str], path: str) -> object:
    """Expand every string in ``node``, but none under a key with a ':' in it. No known key
    has one, so such a key is refused as unknown before its value is read, and its name, which
    may hold a secret (``secret_key:VALUE``), never reaches a message as an expansion's path."""
    if isinstance(node, str):
        return _expand(node, environ, path)
    if isinstance(node, list):
        return [expand_environment(v, environ, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {
            k: v if ":" in str(k) else expand_environment(v, environ, join_path(path, str(k)))
            for k, v in node.items()
        }
    return node


def string_list(value: object, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, "expected a list of strings")
    items = tuple(string(v, f"{path}[{i}]") for i, v in enumerate(value))
    for i, item in enumerate(items):
        if item in items[:i]:
            raise ConfigError(f"{path}[{i}]", f"duplicate value {item!r}")
    return items


def url(value: object, path: str) -> str:
    text = string(value, path).rstrip("/")
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ConfigError(path, f"expected an http(s) URL, got {text!r}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(path, f"expected an http(s) URL, got {text!r}")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ConfigError(path, "expected scheme://host[:port] with no path or query")
    return text


def patterns(value: object, path: str) -> tuple[re.Pattern[str], ...]:
    patterns = []
    for i, text in enumerate(string_list(value, path)):
        try:
            patterns.append(re.compile(text))
        except re.error as exc:
            raise ConfigError(f"{path}[{i}]", f"not a valid regular expression: {exc}") from None
        except (OverflowError, RecursionError):  # a huge repeat count, nesting too deep
            raise ConfigError(f"{path}[{i}]", "not a valid regular expression: too large") from None
    return tuple(patterns)


def word(value: object, path: str) -> str:
    """A non-empty string. YAML reads ``workspace_id: 0`` as a number, so 0 is taken as "0";
    any other number is refused, since YAML may have changed it (0123 is octal 83)."""
    if value == 0 and isinstance(value, int) and not isinstance(value, bool):
        return "0"
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ConfigError(path, f'expected a string; quote it, e.g. "{value}"')
    return string(value, path)
