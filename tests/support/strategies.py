"""The hypothesis strategies of ``tests/e2e/test_fuzz.py``: response bodies and configurations.

The body strategies reuse ``tests.unit.test_parse``'s (``JSON_VALUES``, ``mutated``, ``_paths``)
and add what only raw bytes carry: garbling, NaN/Infinity tokens, numbers of thousands of
digits, nesting around the decoder's depth limit, lone surrogate escapes. The configuration
strategies draw trees shaped like the exporter's config, with wrong values, unknown keys,
``${VAR}`` expansions (of ``ENVIRONMENT``) and secret files (``SECRET_FILES``) in them.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

from exporter import config
from tests.support.samples import SPECS_FAILED_SAMPLE, SPECS_SAMPLE
from tests.unit.test_parse import (
    JSON_VALUES,
    POOL_LIST_BODY,
    WORKLOAD_BODY,
    _paths,
    mutated,
    pool_item,
    pool_list,
    workload,
)

# ------------------------------------------------------------------------ response bodies

DOCUMENTS: tuple[object, ...] = (
    json.loads(WORKLOAD_BODY),
    workload([{"type": "train", "total": "3", "status": {"Running": "3"}}], "statics"),
    json.loads(SPECS_SAMPLE),
    json.loads(SPECS_FAILED_SAMPLE),
    json.loads(POOL_LIST_BODY),
    pool_list(pool_item(available=[{"flavor": "f", "count": 1}])),
    {"error": {"code": "APIG.0301", "message": "Incorrect token"}},
    {"error_code": "ModelArts.50015001", "error_msg": "Pool not found."},
    # Names given twice, which the parsers document to keep once.
    workload(
        [
            {"type": "train", "total": 2, "status": {"Running": 1, "running": 1}},
            {"type": "train", "total": 1, "status": {"Running": 1}},
        ]
    ),
    {"specs": [{"spec_code": "modelarts.vm.gpu.p"}, {"spec_code": "modelarts.vm.gpu.p"}]},
    pool_list(
        pool_item("pool-s", available=[{"flavor": "gpu.s", "count": 1}] * 2),
        pool_item("pool-s", abnormal=[{"flavor": "gpu.s", "count": 1}]),
    ),
)

DOCUMENT_IDS = (
    "workload",
    "statics",
    "specs",
    "specs-failed",
    "pools",
    "pools-minimal",
    "iam-error",
    "error",
    "workload-twice",
    "specs-twice",
    "pools-twice",
)
assert len(DOCUMENT_IDS) == len(DOCUMENTS)

#: JSON text that json.dumps never writes but a server might.
_TOKENS: st.SearchStrategy[bytes] = st.one_of(
    st.sampled_from(
        [b"NaN", b"Infinity", b"-Infinity", b"-0", b"1e999", b"-1e999", b"1E-400", b"0.1e+309"]
    ),
    st.integers(300, 5_000).map(lambda n: b"9" * n),  # beyond float, and beyond 4300 digits
    st.integers(300, 5_000).map(lambda n: b"-1" + b"0" * n),
    st.tuples(
        st.sampled_from([b"", b"Run", b"pool-"]),
        st.sampled_from([rb"\ud800", rb"\udfff", rb"\udbff\u0041", rb"\udc00\ud800"]),
        st.sampled_from([b"", b"ning", b"x"]),
    ).map(lambda parts: b'"' + b"".join(parts) + b'"'),
    # Around the decoder's depth limit, and far beyond it.
    st.integers(1, 1_200).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 1_200).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.just(b"[" * 3_000 + b"]" * 3_000),
    st.integers(1, 50).map(lambda n: b"[" * n),  # never closed
)
#: A string token that json.dumps writes as itself, to be swapped for raw text.
_MARK = "\u2603fuzz-mark\u2603"
_MARK_JSON = json.dumps(_MARK).encode()


@st.composite
def documents(draw: st.DrawFn, indexes: tuple[int, ...] | None = None, least: int = 1) -> object:
    """A documented body (of ``DOCUMENTS[indexes]``) with ``least`` to two wrong values
    or keys."""
    choices = DOCUMENTS if indexes is None else [DOCUMENTS[i] for i in indexes]
    document = draw(st.sampled_from(choices))
    for _ in range(draw(st.integers(least, 2))):
        document = draw(mutated(document))
    return document


@st.composite
def with_token(draw: st.DrawFn, document: object) -> bytes:
    """``document`` as JSON with one value, or one object key, written as a raw token (the
    whole body only when the document is a single value)."""
    doc = copy.deepcopy(document)
    path = draw(st.sampled_from(_paths(doc)[1:] or [()]))
    token = draw(_TOKENS)
    if not path:
        return token
    parent: Any = doc
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and draw(st.booleans()) and token.startswith(b'"'):
        parent[_MARK] = parent.pop(path[-1])  # a key: only a string token is valid there
    else:
        parent[path[-1]] = _MARK
    return json.dumps(doc).encode().replace(_MARK_JSON, token, 1)


@st.composite
def garbled(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` cut short, with a slice removed, repeated or replaced, or one byte flipped."""
    if not raw:
        return draw(st.binary(max_size=8))
    start = draw(st.integers(1, len(raw) - 1)) if len(raw) > 1 else 0
    end = draw(st.integers(start, min(len(raw), start + 16)))
    action = draw(st.sampled_from(["cut", "remove", "repeat", "replace", "flip"]))
    if action == "cut":
        return raw[:start]
    if action == "remove":
        return raw[:start] + raw[end:]
    if action == "repeat":
        return raw[:end] + raw[start:]
    if action == "replace":
        return raw[:start] + draw(st.binary(max_size=6)) + raw[end:]
    return raw[:start] + bytes([raw[start] ^ draw(st.integers(1, 255))]) + raw[start + 1 :]


def _dumps(body: object) -> bytes:
    """JSON as a server would send it; NaN and Infinity are written as those tokens."""
    return json.dumps(body).encode()


#: A JSON string literal (escapes included), and the colon after it when it is a key.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"(\s*:)?')
#: Escapes for one letter: three lone surrogates, and U+FFFD which the parsers put in their
#: place, so that names differing only there become equal.
_SURROGATES = st.sampled_from([rb"\ud800", rb"\udc00", rb"\udfff", rb"\ufffd"])


#: One character of a JSON string literal: an escape sequence or a plain character.
_CHARACTER = re.compile(rb"\\u[0-9a-fA-F]{4}|\\.|[^\\]", re.DOTALL)


@st.composite
def with_surrogates(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` with one letter, wherever it stands (unescaped) in a string value, written
    as the next of a few drawn escapes, in turn."""
    values = [m[0] for m in _STRING.finditer(raw) if not m[1]]
    letters = sorted({c for value in values for c in value if chr(c).isalpha()})
    if not letters:
        return raw
    letter = bytes([draw(st.sampled_from(letters))])
    escapes = itertools.cycle(draw(st.lists(_SURROGATES, min_size=1, max_size=3)))

    def spray(match: re.Match[bytes]) -> bytes:
        if match[1]:
            return match[0]
        characters = _CHARACTER.findall(match[0])
        return b"".join(next(escapes) if c == letter else c for c in characters)

    return _STRING.sub(spray, raw)


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    """Random bytes, or a JSON value or a documented body, as JSON, perhaps with a raw
    token in it, lone surrogate escapes and garbling."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(min_size=1, max_size=64))
    if kind == 1:
        return _dumps(draw(JSON_VALUES))
    document = draw(documents())
    raw = draw(with_token(document)) if kind in (2, 3, 4) else _dumps(document)
    if kind in (4, 5, 6):
        raw = draw(with_surrogates(raw))
    if kind in (7, 8):
        raw = draw(garbled(raw))
    return raw


decoded_bodies: st.SearchStrategy[object] = JSON_VALUES | documents()


# ------------------------------------------------------------------------ configuration

P1 = "0123456789abcdef0123456789abcdef"
P2 = "fedcba9876543210fedcba9876543210-abc"
SDK_AK, SDK_SK, SDK_TOKEN = "AK-FUZZ-SENTINEL-01", "sk-fuzz-sentinel-secret", "tok-fuzz-sentinel"
FILE_SECRET = "file-fuzz-sentinel-secret"
#: Every environment variable a generated config may name, with its value when set.
ENVIRONMENT = {
    config.DEFAULT_ACCESS_KEY_ENV: SDK_AK,
    config.DEFAULT_SECRET_KEY_ENV: SDK_SK,
    config.DEFAULT_SECURITY_TOKEN_ENV: SDK_TOKEN,
    "FUZZ_SET": "value-from-env",
    "FUZZ_PROJECT": P1,
    "FUZZ_REGION": "cn-north-4",
    "FUZZ_DURATION": "45s",
    "FUZZ_EMPTY": "",
    "FUZZ_BLANK": "  ",
    "FUZZ_CONTROL": "bad\x01value",
}
#: Files a generated secret may name (relative to the working directory), with contents.
SECRET_FILES = {
    "secret.txt": f"{FILE_SECRET}\n".encode(),
    "empty.txt": b"\n",
    "binary.bin": b"\xff\xfe\xfa",
    "control.txt": b"a\x07b",
}
SECRETS = (SDK_AK, SDK_SK, SDK_TOKEN, FILE_SECRET)


_YAML_ONLY = st.sampled_from(
    [datetime.date(2024, 2, 28), {"a", "b"}, [("x", 1)], b"\x00bin", datetime.datetime(2024, 1, 1)]
)
_EXPANSIONS = st.sampled_from(
    [
        "${FUZZ_SET}",
        "${FUZZ_UNSET}",
        "${FUZZ_UNSET:-fallback}",
        "${FUZZ_EMPTY}",
        "${FUZZ_EMPTY:-d}",
        "${FUZZ_DURATION}",
        "$$",
        "$${FUZZ_SET}",
        "${1BAD}",
        "${FUZZ_CONTROL}",
    ]
)
_JUNK: st.SearchStrategy[Any] = (
    JSON_VALUES
    | _YAML_ONLY
    | st.sampled_from([10**400, -(10**400), 10**4000, "\ud800", "\t", "a\x00b"])
    | st.tuples(st.text(max_size=3), _EXPANSIONS, st.text(max_size=3)).map("".join)
)


@st.composite
def valid_or(
    draw: st.DrawFn,
    valid: st.SearchStrategy[Any],
    invalid: st.SearchStrategy[Any] = _JUNK,
    weight: int = 4,
) -> Any:
    """``valid`` ``weight`` times in ``weight + 1`` (so that some configs pass), otherwise
    ``invalid`` or a value of any type."""
    if draw(st.integers(0, weight)) < weight:  # 0, the simplest choice, is valid
        return draw(valid)
    return draw(invalid if draw(st.booleans()) else _JUNK)


DURATIONS = valid_or(
    st.sampled_from(["30s", "5m", "1h", "500ms", "60", " 10s ", "0.5s", "2m", "${FUZZ_DURATION}"])
    | st.integers(1, 600)
    | st.floats(0.001, 600),
    st.sampled_from(
        [0, "0", "0s", -1, "-1s", "1e999", "10x", "1.5.s", math.nan, math.inf, 10**400, True, ""]
    ),
)
INTEGERS = valid_or(st.integers(1, 64), st.sampled_from([0, -1, 1.5, "8", True, 10**400]))
RATES = valid_or(
    st.integers(1, 100) | st.floats(0.01, 1e6),
    st.sampled_from([0, -2.5, math.nan, math.inf, "50", 10**400, -(10**400), False]),
)
PATTERNS = valid_or(
    st.sampled_from(["gpu-.*", "Prod .*", ".*-test", "a|b", "[a-z]+", "pool-a"]),
    st.sampled_from(
        [
            "(",
            "[a-",
            "*a",
            "a{2,1}",
            "(?P<x",
            "a{99999999999999999999}",
            "(" * 5_000 + ")" * 5_000,
            "\\",
            "",
        ]
    ),
    weight=8,
)
WORDS = valid_or(
    st.sampled_from(["0", "ws-1", "Running", "os.modelarts/name=Prod A", 0]),
    st.sampled_from([7, 0.0, "", " ", "w\ud800"]),
)
PROJECT_IDS = valid_or(
    st.sampled_from([P1, P2, "${FUZZ_PROJECT}", 10**35]),
    st.sampled_from(["short", "x" * 40, "bad chars !" * 3, 1234]),
    weight=12,
)
REGIONS = valid_or(
    st.sampled_from(["cn-north-4", "ap-southeast-1", "${FUZZ_REGION}"]),
    st.sampled_from(["CN-north-4", "cn", "", "cn-north-4\ud800"]),
    weight=12,
)
URLS = valid_or(
    st.sampled_from(["https://modelarts.example:8443/", "http://iam.example"]),
    st.sampled_from(
        [
            "ftp://x",
            "modelarts.example",
            "http://[::1",
            "http://[::1]x",
            "http://h/path",
            "http://h?q=1",
            "http://a\uff03b",
            "https://",
        ]
    ),
    weight=2,
)
NAMES = valid_or(
    st.sampled_from(["pool-a", "pool-b", "train", "inference"]),
    st.sampled_from(["", " ", "p\ud800", "x\x00", 5]),
    weight=20,
)
STRING_LISTS = valid_or(
    st.lists(NAMES, min_size=1, max_size=3, unique_by=repr),
    st.just([]) | st.lists(NAMES, min_size=2, max_size=3),
    weight=8,
)
ENV_NAMES = valid_or(st.sampled_from(sorted(ENVIRONMENT)), st.sampled_from(["FUZZ_UNSET", "", " "]))
FILE_NAMES = valid_or(
    st.sampled_from(sorted(SECRET_FILES)), st.sampled_from(["missing.txt", "nul\x00name", ""])
)
SECRET_VALUES = valid_or(
    st.sampled_from(["literal-secret", "  padded  "])
    | st.fixed_dictionaries({"env": ENV_NAMES})
    | st.fixed_dictionaries({"file": FILE_NAMES}),
    st.sampled_from(["", "   ", "ctl\x01", "tab\tin", "s\ud800"])
    | st.fixed_dictionaries({}, optional={"env": ENV_NAMES, "file": FILE_NAMES, "other": _JUNK}),
    weight=3,
)


@st.composite
def section(
    draw: st.DrawFn,
    fields: Mapping[str, st.SearchStrategy[Any]],
    required: tuple[str, ...] = (),
    present: int = 40,
) -> dict[Any, Any]:
    """A mapping of ``fields``: each ``required`` one nearly always there, the others
    ``present``% of the time; now and then an unknown key."""
    result: dict[Any, Any] = {}
    for key, strategy in fields.items():
        chance = 97 if key in required else present
        if draw(st.integers(0, 99)) < chance:
            result[key] = draw(strategy)
    if draw(st.integers(0, 29)) == 29:
        first = next(iter(fields))
        # Misspelt, empty, not a string, or a value glued to its key (no space after ':').
        wrong = st.sampled_from([f"{first}x", "Targets", "", 5, None, True, f"{first}:{SDK_SK}"])
        result[draw(wrong)] = draw(_JUNK)
    return result


CREDENTIALS = st.one_of(
    section(
        {
            "type": valid_or(st.just("aksk"), st.sampled_from(["AKSK", "token", 5])),
            "access_key": SECRET_VALUES,
            "secret_key": SECRET_VALUES,
            "security_token": SECRET_VALUES,
        }
    ),
    section(
        {
            "type": st.just("password"),
            "user": valid_or(st.just("operator")),
            "password": SECRET_VALUES,
            "domain": valid_or(st.just("example-domain")),
            "access_key": SECRET_VALUES,
        },
        required=("type", "user", "password", "domain"),
        present=5,
    ),
)
DISCOVERY = st.none() | section(
    {
        "workspace_id": WORDS,
        "status": WORDS,
        "label_selector": WORDS,
        "include": valid_or(st.lists(PATTERNS, max_size=3)),
        "exclude": valid_or(st.lists(PATTERNS, max_size=3)),
        "refresh_interval": DURATIONS,
    }
)
TARGET = section(
    {
        "project_id": PROJECT_IDS,
        "region": REGIONS,
        "endpoint": URLS,
        "iam_endpoint": URLS,
        "pools": STRING_LISTS,
        "resource_specs": valid_or(section({"job_types": STRING_LISTS}, required=("job_types",))),
        "credentials": valid_or(CREDENTIALS),
        "max_concurrency": INTEGERS,
        "requests_per_second": RATES,
        "burst": INTEGERS,
        "discovery": DISCOVERY,
    },
    required=("project_id", "region", "pools"),
    present=25,
)
RETRY = section({"max_attempts": INTEGERS, "initial_backoff": DURATIONS, "max_backoff": DURATIONS})
TREES = section(
    {
        "poll_interval": DURATIONS,
        "stale_after": DURATIONS,
        "jitter": valid_or(st.sampled_from([0, "0", "1s"]), DURATIONS),
        "timeout": DURATIONS,
        "max_concurrency": INTEGERS,
        "max_response_bytes": INTEGERS,
        "requests_per_second": RATES,
        "burst": INTEGERS,
        "retry": valid_or(RETRY),
        "targets": valid_or(
            st.lists(TARGET, min_size=1, max_size=2), st.sampled_from([[], {}, "t"]), weight=12
        ),
    },
    required=("targets",),
    present=15,
)
#: Shaped trees, a third of them with one more wrong value anywhere; some not trees at all.
CONFIG_TREES = valid_or(valid_or(TREES, TREES.flatmap(mutated), weight=2), weight=12)
#: The whole ENVIRONMENT but for a few variables.
ENVIRONS = st.sets(st.sampled_from(sorted(ENVIRONMENT)), max_size=3).map(
    lambda unset: {name: value for name, value in ENVIRONMENT.items() if name not in unset}
)
