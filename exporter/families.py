"""The building blocks of metric families, shared by the data families (``collector``) and
the exporter's own (``selfmetrics``): what a family is (``Family``), what makes one
(``Maker``: a text family or a prometheus_client one), and small helpers that fill one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from exporter.models import Snapshot
from exporter.textformat import Kind

__all__ = [
    "PROJECT",
    "F",
    "Family",
    "Maker",
    "Regions",
    "Row",
    "client_family",
    "every_text",
    "locate",
    "single",
    "table",
]

#: The labels that start every series of a project.
PROJECT = ["project_id", "region"]


class Family(Protocol):
    """A metric family being filled: prometheus_client's, or a text one (``TextFamily``)."""

    def add_metric(self, labels: Sequence[str], value: float) -> None: ...


F = TypeVar("F", bound=Family)
#: project_id -> region (``Snapshot.regions``)
Regions = Mapping[str, str]
#: One sample: its label values and its value.
Row = tuple[tuple[str, ...], float]
F_co = TypeVar("F_co", bound=Family, covariant=True)


class Maker(Protocol[F_co]):
    """Makes an empty family of one kind: (kind, name, help, label names) -> family."""

    def __call__(
        self, kind: Kind, name: str, documentation: str, labels: Sequence[str]
    ) -> F_co: ...


def client_family(
    kind: Kind, name: str, documentation: str, labels: Sequence[str]
) -> GaugeMetricFamily | CounterMetricFamily:
    """A prometheus_client family (for OpenMetrics, which is rendered rarely)."""
    family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return family(name, documentation, labels=labels)


def single(make: Maker[F], name: str, documentation: str, value: float) -> F:
    """A family of one unlabelled gauge."""
    family = make("gauge", name, documentation, ())
    family.add_metric((), value)
    return family


def every_text(snapshot: Snapshot) -> str:
    return f"polled every {snapshot.poll_interval_seconds:g} seconds"


def locate(rows: Iterable[Row], regions: Regions) -> Iterator[Row]:
    """Rows whose label values start with a project_id, its region inserted after it."""
    return (((key[0], regions.get(key[0], ""), *key[1:]), value) for key, value in rows)


def table(
    make: Maker[F],
    kind: Kind,
    name: str,
    documentation: str,
    labels: list[str],
    rows: Iterable[Row],
) -> F:
    """A family with one sample per (label values, value) row."""
    family = make(kind, name, documentation, labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family
