"""The Prometheus text format (0.0.4), written line by line from label values and numbers.

prometheus_client renders through ``Metric`` objects: a ``Sample`` and a dict of labels per
series, then one string per line, all alive until the final join. That is three short-lived
objects per series, about 100,000 per render at 1000 pools, made in the worker thread
while the poller allocates the objects the next snapshot keeps; the survivors pin pymalloc
arenas that the renders filled, and resident memory creeps up. Here each line is written
to its family's buffer as soon as it is made and freed at once, so a render reuses the
same few blocks.

The bytes are prometheus_client's own (``generate_latest``): label pairs sorted by name, label
values and help text escaped the same way, numbers formatted by its ``floatToGoString``;
``tests/unit/test_textformat.py`` compares the two on the same families.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from prometheus_client import utils

__all__ = ["Kind", "TextFamily", "join"]

Kind = Literal["gauge", "counter"]

#: prometheus_client's number format (Go's: ``+Inf``, ``NaN``, ``1.5e+09``); untyped there.
_number: Callable[[float], str] = utils.floatToGoString


def _escape_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


class TextFamily:
    """One metric family in the text format: its ``# HELP``/``# TYPE`` lines, then a line per
    :meth:`add_metric`. A counter ``name`` is shown as ``name_total``, as prometheus_client
    does."""

    __slots__ = ("_buffer", "_name", "_pairs", "_size")

    def __init__(self, kind: Kind, name: str, documentation: str, labels: Sequence[str]) -> None:
        self._name = f"{name}_total" if kind == "counter" else name
        self._size = len(labels)
        by_name = sorted(range(self._size), key=labels.__getitem__)
        #: (``name="``, position of its value), sorted by label name.
        self._pairs = [(f'{labels[i]}="', i) for i in by_name]
        self._buffer = io.StringIO()
        help_text = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self._buffer.write(f"# HELP {self._name} {help_text}\n# TYPE {self._name} {kind}\n")

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        """One series: ``labels`` are the values, in the order the label names were given."""
        if len(labels) != self._size:
            raise ValueError(f"{self._name}: {len(labels)} label values for {self._size} names")
        number = _number(value)
        if not self._pairs:
            self._buffer.write(f"{self._name} {number}\n")
            return
        pairs = '",'.join([key + _escape_value(labels[i]) for key, i in self._pairs])
        self._buffer.write(f'{self._name}{{{pairs}"}} {number}\n')

    def finish(self) -> bytes:
        """The family's text, UTF-8 encoded; its buffer is released, nothing more is added."""
        text = self._buffer.getvalue()
        self._buffer.close()
        return text.encode("utf-8")


def join(families: Iterable[TextFamily]) -> bytes:
    """The whole exposition of ``families``, in order. Each family's buffer is released as
    soon as it is encoded."""
    return b"".join([family.finish() for family in families])
