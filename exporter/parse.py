"""Response bodies → models. Pure functions; a body that is not as documented raises
``ResponseError`` naming the JSON path, never anything else.

Tolerated on purpose (``docs/modelarts-api.md``): the ``statics`` top-level key, counts as
strings, unknown job types and status keys (passed through), ``error_msg`` / ``error_message``
/ ``errorMsg`` / ``message``, and ListPools' node counts per state as one ``{flavor, count}``
object (the official SDK's ``PoolResourceFlavorCount``) or a list of them.

Never a silent zero or a silent absence. In ShowWorkloadStatistics any count that cannot be
read fails the response. In resource specs and ListPools a field that is absent (or null)
leaves its string empty or its series out, as the documentation allows; a field that is
there but cannot be read (a number that is not one, a flag that is not a boolean, a list
that is not a list) leaves out what it would have given and is named in the result's
``problems`` (its JSON path and what was wrong), which the poller counts and logs while
serving the rest. A spec without a code, or a pool without a name, fails the response
(discovery then keeps the last good list).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from exporter.errors import ApiError, ErrorDetail, ResponseError, safe_error_code
from exporter.models import (
    JOB_STATUSES,
    JOB_TYPES,
    LONE_SURROGATE,
    NODE_STATES,
    POOL_PHASES,
    JobTypeStatistics,
    Pool,
    PoolFlavor,
    PoolList,
    ResourceSpec,
    ResourceSpecs,
    WorkloadStatistics,
    problems_of,
)

__all__ = [
    "error_fields",
    "load_json",
    "parse_pool_list",
    "parse_resource_specs",
    "parse_workload_statistics",
    "zero_filled",
]

_CODE_KEYS = ("error_code", "errorCode", "code")
_MESSAGE_KEYS = ("error_msg", "error_message", "errorMsg", "message")
_MAX_MESSAGE = 512


def _invalid(where: str, problem: str) -> ResponseError:
    return ResponseError(ErrorDetail(message=f"{where}: {problem}"), "invalid_response")


def load_json(raw: bytes) -> object:
    """Decode a JSON body or raise ``ResponseError(invalid_json)``."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        detail = ErrorDetail(message=f"response is not JSON: {str(exc)[:120]}")
        raise ResponseError(detail, "invalid_json") from None


def error_fields(body: object) -> tuple[str | None, str]:
    """(code, message) from any documented error-body shape; (None, "") when there is none.

    IAM nests its error as ``{"error": {"code": 401, "message": …}}``; that is read too. The
    code is returned only if it is code-shaped (see ``errors.safe_error_code``).
    """
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if not isinstance(body, dict):
        return None, ""
    code = next((safe_error_code(body[k]) for k in _CODE_KEYS if k in body), None)
    message = next((body[k] for k in _MESSAGE_KEYS if isinstance(body.get(k), str)), "")
    return code, message[:_MAX_MESSAGE]


def _count(value: object, where: str) -> float:
    """A non-negative finite job count, given as a number or a numeric string."""
    number = _number(value)
    if number is None or number < 0:
        raise _invalid(where, f"expected a non-negative count, got {_preview(value)}")
    return number


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the float range (JSON allows any length)
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _preview(value: object) -> str:
    text = _json_text(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_text(value: object) -> str:
    """``value`` as JSON; its type name when nested too deeply to encode here (decoded
    higher up the stack, it may still have fitted)."""
    try:
        return json.dumps(value)
    except RecursionError:
        return type(value).__name__


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(where, f"expected an object, got {type(value).__name__}")
    return value


def _array(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(where, f"expected an array, got {type(value).__name__}")
    return value


def parse_workload_statistics(body: object) -> WorkloadStatistics:
    """ShowWorkloadStatistics. Duplicated job types or statuses (case-insensitive) keep the
    first occurrence, since two series with one label set would break the scrape."""
    root = _object(body, "$")
    # The documented key, unless only the "statics" edition's key is there; errors name it.
    key = "statics" if "statics" in root and "statistics" not in root else "statistics"
    stats = _object(root.get(key), f"$.{key}")
    items = _array(stats.get("items", []), f"$.{key}.items")
    job_types: dict[str, JobTypeStatistics] = {}
    for index, raw_item in enumerate(items):
        where = f"$.{key}.items[{index}]"
        item = _object(raw_item, where)
        job_type = item.get("type")
        if not isinstance(job_type, str) or not job_type:
            raise _invalid(f"{where}.type", "expected a non-empty string")
        total = item.get("total")
        statuses: dict[str, float] = {}
        for status, count in _object(item.get("status", {}), f"{where}.status").items():
            # Interned: the same few status names repeat in every pool.
            name = sys.intern(_text(status.lower()))
            statuses.setdefault(name, _count(count, f"{where}.status.{status}"))
        # The key too: types that differ only in lone surrogates are one label value.
        label = sys.intern(_text(job_type))
        job_types.setdefault(
            label,
            JobTypeStatistics(
                job_type=label,
                total=None if total is None else _count(total, f"{where}.total"),
                statuses=tuple(statuses.items()),
            ),
        )
    return WorkloadStatistics(job_types=tuple(job_types.values()))


def zero_filled(stats: WorkloadStatistics) -> WorkloadStatistics:
    """``stats`` with every documented job type first (one the pool left out has no jobs,
    total 0), each with every documented status first (0 when left out); unknown types and
    statuses follow as returned.

    ModelArts may leave out what has no jobs. Served as 0, a pool's first failed job is a
    rise from 0 that alerts see, not the birth of a series at 1. The client applies it once
    per poll, so that no render of /metrics pays for it."""
    reported = {item.job_type: item for item in stats.job_types}
    documented = tuple(_filled(reported.pop(t, None), t) for t in JOB_TYPES)
    return WorkloadStatistics(documented + tuple(_filled(i, i.job_type) for i in reported.values()))


_NO_JOBS = tuple((status, 0.0) for status in JOB_STATUSES)


def _filled(item: JobTypeStatistics | None, job_type: str) -> JobTypeStatistics:
    if item is None:
        return JobTypeStatistics(job_type, 0.0, _NO_JOBS)
    counts = dict(item.statuses)
    known = tuple((status, counts.pop(status, 0.0)) for status in JOB_STATUSES)
    return JobTypeStatistics(job_type, item.total, known + tuple(counts.items()))


def _text(value: str) -> str:
    """A string that can be encoded as UTF-8: JSON may carry lone surrogates (``\\ud800``),
    which would make the whole exposition unrenderable; they become U+FFFD."""
    return LONE_SURROGATE.sub("\ufffd", value)


def _label(value: object) -> str:
    """A label value from a scalar field: strings as they are, numbers without '.0'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _text(value) if isinstance(value, str) else _json_text(value)[:64]


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


class _Problems:
    """Fields that are there but cannot be read, each as "JSON path: what was wrong"."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def note(self, where: str, expected: str, value: object) -> None:
        self.found.append(f"{where}: expected {expected}, got {_preview(value)}")

    def number(self, value: object, where: str, *, count: bool = False) -> float | None:
        """A number (a count: not negative); None when absent or, noted, unreadable."""
        number = _number(value)
        if value is not None and (number is None or (count and number < 0)):
            self.note(where, "a non-negative count" if count else "a number", value)
            return None
        return number

    def flag(self, value: object, where: str) -> bool | None:
        """A boolean (or "true"/"false"); None when absent or, noted, unreadable."""
        flag = _flag(value)
        if value is not None and flag is None:
            self.note(where, "a boolean", value)
        return flag

    def text(self, value: object, where: str) -> str:
        """A string; "" when absent or, noted, not a string."""
        if value is not None and not isinstance(value, str):
            self.note(where, "a string", value)
        return _text(value) if isinstance(value, str) else ""

    def objects(self, item: dict[str, Any], where: str, *paths: tuple[str, ...]) -> None:
        """Note each of ``paths`` inside ``item`` that is there but not an object (what is
        inside it then reads as absent)."""
        for path in paths:
            found = _dig(item, *path)
            if found is not None and not isinstance(found, dict):
                self.note(".".join((where, *path)), "an object", found)

    def entries(self, value: object, where: str) -> list[tuple[object, str]]:
        """The entries of a list, or the one object given where a list is documented (the
        SDK's shape of ListPools' node counts), each with its path; [] when absent or,
        noted, neither."""
        if isinstance(value, list):
            return [(entry, f"{where}[{index}]") for index, entry in enumerate(value)]
        if isinstance(value, dict):  # {} (no nodes in that state) is no entry
            return [(value, where)] if value else []
        if value is not None:
            self.note(where, "a list of objects", value)
        return []


def _spec(raw: object, where: str, problems: _Problems) -> ResourceSpec:
    spec = _object(raw, where)
    code = spec.get("spec_code")
    if not isinstance(code, str) or not code:
        raise _invalid(f"{where}.spec_code", "expected a non-empty string")

    def number(key: str) -> float | None:
        return problems.number(spec.get(key), f"{where}.{key}")

    return ResourceSpec(
        spec_code=_text(code),
        spec_id=_label(spec.get("spec_id")),
        gpu_type=_label(spec.get("gpu_type")),
        storage=_label(spec.get("storage")),
        interface_type=_label(spec.get("interface_type")),
        no_resource=problems.flag(spec.get("no_resource"), f"{where}.no_resource"),
        gpus=number("gpu_num"),
        cpu_cores=number("core"),
        memory_gib=number("cpu"),
        max_nodes=number("max_num"),
        pricing_units=number("unit_num"),
    )


def parse_resource_specs(body: object) -> ResourceSpecs:
    """QueryJobResourceSpecs. ``is_success: false`` raises ``ApiError`` (HTTP 200)."""
    root = _object(body, "$")
    problems = _Problems()
    if problems.flag(root.get("is_success"), "$.is_success") is False:
        code, message = error_fields(root)
        detail = ErrorDetail(http_status=200, error_code=code, message=message or "is_success")
        raise ApiError(detail)
    specs: dict[str, ResourceSpec] = {}
    for index, raw in enumerate(_array(root.get("specs", []), "$.specs")):
        spec = _spec(raw, f"$.specs[{index}]", problems)
        specs.setdefault(spec.spec_code, spec)
    total = problems.number(root.get("spec_total_count"), "$.spec_total_count", count=True)
    return ResourceSpecs(
        total_count=total, specs=tuple(specs.values()), problems=tuple(problems.found)
    )


_DISPLAY_NAME = "os.modelarts/name"
_WORKSPACE = "os.modelarts/workspace.id"


def _dig(value: object, *path: str) -> object:
    """The value at ``path`` inside nested objects; None when any step is missing."""
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _string_at(value: object, *path: str) -> str:
    """The string at ``path`` inside nested objects; "" when absent or not a string."""
    found = _dig(value, *path)
    return _text(found) if isinstance(found, str) else ""


def _flavor_rows(
    entries: object, where: str, problems: _Problems
) -> list[tuple[str, float | None, float | None]]:
    """(flavor, count, maxCount) of ``{"flavor", "count"[, "maxCount"]}`` entries (a list,
    or one object); an entry without a flavor name is left out, noted."""
    rows = []
    for entry, at in problems.entries(entries, where):
        named = _dig(entry, "flavor")
        flavor = _text(named) if isinstance(named, str) else ""
        if not flavor:
            problems.note(f"{at}.flavor", "a flavor name", named)
            continue
        count = problems.number(_dig(entry, "count"), f"{at}.count", count=True)
        max_count = problems.number(_dig(entry, "maxCount"), f"{at}.maxCount", count=True)
        rows.append((flavor, count, max_count))
    return rows


def _pool(raw: object, where: str) -> Pool:
    item = _object(raw, where)
    problems = _Problems()
    problems.objects(
        item, where, ("metadata", "labels"), ("spec",), ("status",), ("status", "resources")
    )
    name = _string_at(item, "metadata", "name")
    if not name:
        raise _invalid(f"{where}.metadata.name", "expected a non-empty string")
    nodes: dict[tuple[str, str], float] = {}
    for state in NODE_STATES:
        found = _dig(item, "status", "resources", state)
        for flavor, count, _ in _flavor_rows(found, f"{where}.status.resources.{state}", problems):
            total = nodes.get((flavor, state), 0.0) + (count or 0.0)
            if count is not None and math.isfinite(total):
                nodes[(flavor, state)] = total
    flavors: dict[str, PoolFlavor] = {}
    declared = _dig(item, "spec", "resources")
    for flavor, count, max_count in _flavor_rows(declared, f"{where}.spec.resources", problems):
        flavors.setdefault(flavor, PoolFlavor(flavor, count, max_count))

    def text(*path: str) -> str:
        return problems.text(_dig(item, *path), ".".join((where, *path)))

    return Pool(
        name=name,
        display_name=text("metadata", "labels", _DISPLAY_NAME),
        pool_type=text("spec", "type"),
        workspace_id=text("metadata", "labels", _WORKSPACE),
        phase=_phase(text("status", "phase")),
        flavors=tuple(flavors.values()),
        nodes=tuple((flavor, state, count) for (flavor, state), count in nodes.items()),
        problems=tuple(problems.found),
    )


_PHASES = {phase.lower(): phase for phase in POOL_PHASES}


def _phase(text: str) -> str:
    """A documented phase in its documented spelling whatever the case; "Unknown" when
    absent; any other value as it is."""
    return _PHASES.get(text.lower(), text) if text else "Unknown"


def parse_pool_list(body: object) -> PoolList:
    """ListPools. ``items`` is required unless the body says it is a ``PoolList`` (an empty
    list may leave it out): any other body without it must not read as "no pools", which
    would drop every discovered pool. A pool listed twice keeps its first entry."""
    root = _object(body, "$")
    items = root.get("items")
    if items is None and root.get("kind") == "PoolList":
        items = []
    pools: dict[str, Pool] = {}
    for index, raw in enumerate(_array(items, "$.items")):
        pool = _pool(raw, f"$.items[{index}]")
        pools.setdefault(pool.name, pool)
    return PoolList(pools=tuple(pools.values()), problems=problems_of(pools.values()))
