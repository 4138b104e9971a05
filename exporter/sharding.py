"""Horizontal sharding, as kube-state-metrics does it: n exporters, each polls a share.

Run n exporters with the same config, each with ``--shard=i --total-shards=n`` (or, in a
StatefulSet, ``--shard.from-hostname --total-shards=n``). Every item then belongs to exactly
one shard:

- **A pool** (``workload_statistics`` item of ``project_id``) belongs to shard
  ``h(f"{project_id}/{pool}") % n``, where ``h`` is the first 8 bytes of the string's
  SHA-256 digest read as a big-endian unsigned integer. The hash is stable: every process,
  machine and Python version computes the same shard (Python's ``hash()`` is salted per
  process and would not be).
- **A job type's resource specs** (``resource_specs`` item) belong to shard 0. There are only
  a few of them per project, and one place to find them keeps the spec series in one
  exporter.

Example: with 3 shards, ``owns`` is true for exactly one of ``Shard(0, 3)``, ``Shard(1, 3)``,
``Shard(2, 3)`` for each pool; the specs of ``train`` and ``inference`` are polled only by
``Shard(0, 3)``::

    >>> from exporter.models import Api, ItemKey
    >>> pool = ItemKey("0123456789abcdef0123456789abcdef", Api.WORKLOAD_STATISTICS, "pool-a")
    >>> [Shard(i, 3).owns(pool) for i in range(3)].count(True)
    1
    >>> specs = ItemKey(pool.project_id, Api.RESOURCE_SPECS, "train")
    >>> [Shard(i, 3).owns(specs) for i in range(3)]
    [True, False, False]

The union of the n shards' data series is exactly what one unsharded exporter serves.
Changing n moves most pools to another shard; that is harmless as long as every shard is
given the same n, since each polls its items afresh every cycle.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from exporter.models import Api, ItemKey

__all__ = ["UNSHARDED", "Shard", "ordinal_from_hostname", "shard_of"]

#: A StatefulSet pod's hostname: ``<statefulset name>-<ordinal>``.
_ORDINAL = re.compile(r"^.+-(?P<ordinal>[0-9]+)$")


def shard_of(project_id: str, pool: str, total: int) -> int:
    """The shard, of ``total``, that polls ``pool`` of ``project_id`` (stable hash)."""
    digest = hashlib.sha256(f"{project_id}/{pool}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % total


def ordinal_from_hostname(hostname: str) -> int:
    """The ordinal at the end of a StatefulSet pod's hostname: ``modelarts-exporter-2`` → 2.

    Only the first DNS label counts (``modelarts-exporter-2.svc.example`` → 2). Raises
    ``ValueError`` when the name does not end in ``-<digits>``.
    """
    label = hostname.split(".", 1)[0]
    match = _ORDINAL.match(label)
    if match is None:
        raise ValueError(
            f"hostname {hostname!r} does not end in -<ordinal> "
            "(as a StatefulSet pod does, e.g. modelarts-exporter-2)"
        )
    return int(match["ordinal"])


@dataclass(frozen=True, slots=True)
class Shard:
    """This exporter's shard: number ``index`` of ``total`` (0 ≤ index < total)."""

    index: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError(f"the number of shards must be at least 1, got {self.total}")
        if not 0 <= self.index < self.total:
            raise ValueError(
                f"the shard must be between 0 and {self.total - 1} for {self.total} shard(s), "
                f"got {self.index}"
            )

    def owns(self, item: ItemKey) -> bool:
        """Whether this shard polls ``item``: pools by stable hash, resource specs on shard 0."""
        if item.api is Api.RESOURCE_SPECS:
            return self.index == 0
        return shard_of(item.project_id, item.name, self.total) == self.index


#: The one shard of an unsharded exporter: it owns every item.
UNSHARDED = Shard(0, 1)
