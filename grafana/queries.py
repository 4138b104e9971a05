"""What the dashboards' variables stand for, and their queries with the variables filled
in: ``expand`` substitutes a query's variables (All is ``.*``, Grafana's macros get fixed
values); ``panel_queries`` and ``variable_queries`` list every panel's and variable's
query of a dashboard, so that the tests can run them against a real Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

from panels import Json

__all__ = ["ALL", "GRAFANA_MACROS", "expand", "panel_queries", "variable_queries"]

ALL = ".*"
"""What an "All" selection of a multi-value variable stands for in a ``=~`` matcher."""

GRAFANA_MACROS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
"""Grafana's built-in variables the dashboards use, with the values ``expand`` gives them."""

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"label_values\((?:(.+),\s*)?(\w+)\)")


def _panels(panels: Sequence[Json]) -> Iterator[Json]:
    for item in panels:
        yield item
        yield from _panels(item.get("panels", []))


def expand(expr: str, dashboard: Json, variables: Mapping[str, str]) -> str:
    """``expr`` with ``$var`` and ``${var}`` replaced by ``variables[var]``; a variable of
    ``dashboard`` missing from ``variables`` becomes ``.*`` (all values: every variable is
    matched with ``=~``). Grafana's ``$__rate_interval``, ``$__interval`` and ``$__range``
    become 1m, 15s and 5m. An unknown variable raises ``KeyError``."""
    defined = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    values = {**dict.fromkeys(defined, ALL), **variables, **GRAFANA_MACROS}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"undefined variable ${name} in {match.string!r}")
        return values[name]

    return _VARIABLE.sub(substitute, expr)


def panel_queries(dashboard: Json, variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """(panel title, query) for every target of every panel, rows' panels included, with
    the variables substituted as ``expand`` does."""
    return [
        (item["title"], expand(t["expr"], dashboard, variables))
        for item in _panels(dashboard.get("panels", []))
        for t in item.get("targets", [])
        if "expr" in t
    ]


def variable_queries(dashboard: Json, variables: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(variable name, series selector, label) of every ``label_values(selector, label)``
    variable, the others substituted as ``expand`` does ("" for a selector left out)."""
    found = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        match = _LABEL_VALUES.fullmatch(variable["definition"])
        if match is None:
            raise ValueError(f"variable {variable['name']}: not label_values(...)")
        selector = expand(match.group(1) or "", dashboard, variables)
        found.append((variable["name"], selector, match.group(2)))
    return found
