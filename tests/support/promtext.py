"""Reading a text exposition back into samples, for assertions."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample keyed by (name, label set)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the one series of ``name`` whose labels include ``labels`` (so a test
    need not name labels it is not about, such as ``region``), or None when there is none.
    More than one such series is an error: the labels given must pick one series."""
    found = series(samples, name, **labels)
    if len(found) > 1:
        raise AssertionError(f"{len(found)} series of {name} match {labels}: {sorted(found)}")
    return next(iter(found.values()), None)


def series(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """All series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return {k[1]: v for k, v in samples.items() if k[0] == name and wanted <= k[1]}
