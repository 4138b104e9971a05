"""The directly written text format against prometheus_client's ``generate_latest``: the
same families, or the same snapshot, give the same bytes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from exporter.collector import SnapshotCollector, render_text
from exporter.families import client_family
from exporter.models import (
    Api,
    ConfigStatus,
    CycleStats,
    ItemKey,
    ItemState,
    JobTypeStatistics,
    Pool,
    PoolFlavor,
    PoolList,
    ResourceSpec,
    ResourceSpecs,
    Snapshot,
    WorkloadStatistics,
)
from exporter.textformat import Kind, TextFamily, join

#: Text with everything the format escapes (backslash, quote, newline), other control and
#: non-ASCII characters, and the empty string.
TEXT = st.text(st.sampled_from('ab_-:.\\"\n\t{}=,#\u00e9\u8bad\U0001f680 '), max_size=8)
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**62), 2**62).map(float),
    st.sampled_from([0.0, -0.0, 1e-9, 1e6, 1234567.0, 12345678.0, 2**53 + 1.0]),
)
LABEL_NAMES = st.lists(
    st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,6}", fullmatch=True), max_size=4, unique=True
)

Rows = list[tuple[list[str], float]]
Spec = tuple[Kind, str, str, list[str], Rows]


@st.composite
def family_specs(draw: st.DrawFn) -> Spec:
    """(kind, name, help, label names, [(label values, value)]). A counter's name is given
    without ``_total``, as the collector gives every one."""
    kind: Kind = draw(st.sampled_from(["gauge", "counter"]))
    name = draw(st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,10}", fullmatch=True))
    if kind == "counter":
        name = name.removesuffix("_total") or "c"
    labels = draw(LABEL_NAMES)
    values = st.lists(TEXT, min_size=len(labels), max_size=len(labels))
    rows = draw(st.lists(st.tuples(values, NUMBERS), max_size=5))
    return kind, name, draw(TEXT), labels, rows


class Families(Collector):
    """A collector of ready-made prometheus_client families."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def reference(collector: Collector) -> bytes:
    """What prometheus_client's text format makes of ``collector``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)


class TestFamilies:
    @settings(max_examples=400, deadline=None)
    @given(st.lists(family_specs(), max_size=4))
    def test_same_bytes_as_prometheus_client(self, specs: list[Spec]) -> None:
        """Any families, with any label values, help text and numbers (NaN, infinities,
        -0.0, large integers), render as generate_latest renders them."""
        ours, theirs = [], []
        for kind, name, documentation, labels, rows in specs:
            text = TextFamily(kind, name, documentation, labels)
            family = client_family(kind, name, documentation, labels)
            for values, value in rows:
                text.add_metric(values, value)
                family.add_metric(values, value)
            ours.append(text)
            theirs.append(family)
        assert join(ours) == reference(Families(theirs))

    def test_label_pairs_sorted_and_escaped(self) -> None:
        """Label pairs come sorted by name whatever order the names were given in; a
        backslash, a quote and a newline in a value are escaped, and in help text the
        backslash and the newline (not the quote)."""
        family = TextFamily("counter", "m", 'a "b" \\ c\nd', ["z", "a"])
        family.add_metric(["1", 'x\\y"z\n'], 2.5)
        assert family.finish() == (
            b'# HELP m_total a "b" \\\\ c\\nd\n'
            b"# TYPE m_total counter\n"
            b'm_total{a="x\\\\y\\"z\\n",z="1"} 2.5\n'
        )

    @pytest.mark.parametrize("values", [[], ["a", "b"]], ids=["fewer", "more"])
    def test_wrong_number_of_label_values(self, values: list[str]) -> None:
        """Label values must match the label names one for one."""
        family = TextFamily("gauge", "m", "h", ["a"])
        with pytest.raises(ValueError, match="label values for 1 names"):
            family.add_metric(values, 1.0)


KEYS = st.builds(ItemKey, TEXT, st.sampled_from(list(Api)), TEXT)
OPTIONAL = st.none() | NUMBERS
WORKLOADS = st.builds(
    WorkloadStatistics,
    st.lists(
        st.builds(
            JobTypeStatistics,
            TEXT,
            OPTIONAL,
            st.lists(st.tuples(TEXT, NUMBERS), max_size=3).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
)
SPECS = st.builds(
    ResourceSpecs,
    OPTIONAL,
    st.lists(
        st.builds(
            ResourceSpec,
            TEXT,
            TEXT,
            TEXT,
            TEXT,
            TEXT,
            st.none() | st.booleans(),
            OPTIONAL,
            OPTIONAL,
            OPTIONAL,
            OPTIONAL,
            OPTIONAL,
        ),
        max_size=3,
    ).map(tuple),
)
POOLS = st.builds(
    PoolList,
    st.lists(
        st.builds(
            Pool,
            TEXT,
            TEXT,
            TEXT,
            TEXT,
            st.sampled_from(["Running", "Abnormal"]) | TEXT,
            st.lists(st.builds(PoolFlavor, TEXT, OPTIONAL, OPTIONAL), max_size=2).map(tuple),
            st.lists(st.tuples(TEXT, TEXT, NUMBERS), max_size=3).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
)
NOW = 1_800_000_000.0
ITEMS = st.builds(
    ItemState,
    KEYS,
    st.booleans(),
    NUMBERS,
    st.none() | st.sampled_from([NOW - 10.0, NOW - 1000.0]),
    st.none() | WORKLOADS | SPECS | POOLS,
    st.none() | TEXT,
    st.none() | st.just(5000.0),
)
COUNTS = st.lists(st.tuples(st.tuples(TEXT, TEXT, TEXT), st.integers(0, 2**40)), max_size=3)
SNAPSHOTS = st.builds(
    Snapshot,
    poll_interval_seconds=st.just(60.0) | st.floats(0.001, 1e6),
    stale_after_seconds=st.just(180.0),
    items=st.lists(ITEMS, max_size=6).map(tuple),
    up=st.lists(st.tuples(TEXT, st.booleans()), max_size=2).map(tuple),
    requests=COUNTS.map(tuple),
    errors=COUNTS.map(tuple),
    cycles=st.lists(
        st.tuples(TEXT, st.builds(CycleStats, st.integers(0, 10**9), st.integers(0, 10**9))),
        max_size=2,
    ).map(tuple),
    credentials_refused=st.lists(st.tuples(TEXT, st.booleans()), max_size=2).map(tuple),
    shard=st.tuples(st.integers(0, 7), st.integers(1, 8)),
    request_rates=st.lists(st.tuples(TEXT, NUMBERS), max_size=2).map(tuple),
    config=st.builds(ConfigStatus, st.booleans(), st.none() | st.just(NOW)),
)


class TestSnapshots:
    @settings(max_examples=300, deadline=None)
    @given(SNAPSHOTS)
    def test_same_bytes_as_prometheus_client(self, snapshot: Snapshot) -> None:
        """What /metrics serves (render_text) is, byte for byte, what prometheus_client
        renders from the same families (SnapshotCollector), fresh and stale items alike."""
        assert render_text(snapshot, NOW) == reference(SnapshotCollector(snapshot, NOW))
