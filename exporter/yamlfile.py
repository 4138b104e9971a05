"""Reading the exporter's YAML files (the config file, the web config file): every problem
is a ``ConfigError`` that says where, and never quotes the file's text, which may hold a
secret (PyYAML's own messages quote the offending line).

PyYAML's safe loader is used with two changes, so that nothing it cannot build escapes as
a ``ValueError``: a timestamp stays the text it was written as (no key takes a date, so
``alice: 2024-02-30`` reaches the key's own check, which names the key), and an integer too
long for Python (over 4300 digits) is reported at its line and column, as a syntax error is.
Nesting too deep for the parser is reported too (``RecursionError``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from exporter.errors import ConfigError

__all__ = ["ExporterLoader", "read_yaml"]


class ExporterLoader(yaml.SafeLoader):
    """The safe loader, dates kept as text and long integers reported at their place: how
    the exporter reads its files (tests read generated files back with it)."""


def _text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    return loader.construct_scalar(node)


def _integer(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    try:
        return loader.construct_yaml_int(node)
    except ValueError:  # Python's limit on converting digits: 4300 by default
        raise yaml.constructor.ConstructorError(
            None, None, "an integer with too many digits", node.start_mark
        ) from None


ExporterLoader.add_constructor("tag:yaml.org,2002:timestamp", _text)
ExporterLoader.add_constructor("tag:yaml.org,2002:int", _integer)


def read_yaml(path: Path, what: str) -> object:
    """The data of the YAML file at ``path``, the ``what`` (e.g. "config file") in errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"cannot read {what} {path}: not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=ExporterLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError("", f"{path} is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError("", f"{path} is not valid YAML: nested too deeply") from None
