"""YAML configuration → frozen dataclasses.

``parse()`` is pure (environment and file reader are passed in) and either returns a valid
``Config`` or raises ``ConfigError`` whose message starts with the key path::

    targets[0].project_id: must be 32-36 characters, got 7

Unknown keys are errors, so a typo never silently does nothing. ``load()`` is the thin edge
that opens the file. Every key is documented in ``config.example.yaml``.

Why one module of some 550 lines: it is the schema (the dataclasses) and the reading of
each section beside it, so that a key's type, default and check are read in one place.
The readers of single values (durations, numbers, URLs, patterns, ``${VAR}``) are
``exporter.sections``', shared with the web config.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.errors import ConfigError
from exporter.sections import (
    Section,
    expand_environment,
    parse_duration,
    patterns,
    positive_int,
    positive_number,
    string,
    string_list,
    url,
    word,
)
from exporter.yamlfile import read_yaml

__all__ = [
    "DEFAULT_ACCESS_KEY_ENV",
    "DEFAULT_REQUESTS_PER_SECOND",
    "DEFAULT_SECRET_KEY_ENV",
    "DEFAULT_SECURITY_TOKEN_ENV",
    "AkSkCredentials",
    "Config",
    "Credentials",
    "Discovery",
    "FileReader",
    "PasswordCredentials",
    "RetryPolicy",
    "Secret",
    "Target",
    "default_burst",
    "load",
    "parse",
    "parse_duration",
    "read_secret_file",
    "redacted",
]

DEFAULT_ACCESS_KEY_ENV = "HUAWEICLOUD_SDK_AK"
DEFAULT_SECRET_KEY_ENV = "HUAWEICLOUD_SDK_SK"  # noqa: S105 - a variable name
DEFAULT_SECURITY_TOKEN_ENV = "HUAWEICLOUD_SDK_SECURITY_TOKEN"  # noqa: S105
#: The request budget's default rate, per target (see ``exporter.budget``).
#: A quarter of API Gateway's default per-API limit (200/s), leaving room for other tools;
#: about 3000 pools and job types fit in a 60 s interval.
DEFAULT_REQUESTS_PER_SECOND = 50.0


def default_burst(requests_per_second: float) -> int:
    """``burst`` when not configured: the whole part of the rate, at least 1."""
    return max(1, math.floor(requests_per_second))


DEFAULT_BURST = default_burst(DEFAULT_REQUESTS_PER_SECOND)

_NONE: tuple[str, ...] = ()


@dataclass(frozen=True)
class Secret:
    """A credential. Its ``repr``/``str`` never show the value; ``reveal()`` does.
    ``file`` is the path it was read from, for a secret given as ``{file: PATH}``: the
    exporter reads it again when the file changes (``exporter.credentials``)."""

    _value: str = field(repr=False)
    source: str
    file: str | None = None

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return f"<secret from {self.source}>"

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r})"


@dataclass(frozen=True)
class AkSkCredentials:
    """Access key / secret key, optionally temporary (with a security token)."""

    access_key: Secret
    secret_key: Secret
    security_token: Secret | None = None


@dataclass(frozen=True)
class PasswordCredentials:
    """An IAM user's password, exchanged for a token at ``iam_endpoint``."""

    user: str
    password: Secret
    domain: str


@dataclass(frozen=True)
class MetadataCredentials:
    """Temporary AK/SK of the server's agency, from the instance metadata service at
    ``url`` (``exporter.metadata``): no secret in the configuration at all."""

    url: str = "http://169.254.169.254"


Credentials = AkSkCredentials | PasswordCredentials | MetadataCredentials


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per poll, and the exponential backoff (with full jitter) between them."""

    max_attempts: int = 3
    initial_backoff: float = 0.5
    max_backoff: float = 30.0


@dataclass(frozen=True)
class Discovery:
    """Pool discovery through ListPools: which pools to take, and how often to ask.

    A pool is taken when ``include`` is empty or one of its patterns matches the pool's
    name or display name, and no ``exclude`` pattern matches either. Patterns are anchored
    (they must match the whole name), as in Prometheus relabelling.
    """

    workspace_id: str | None = None
    status: str | None = None
    label_selector: str | None = None
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    refresh_interval: float = 300.0

    def selects(self, name: str, display_name: str) -> bool:
        """Whether a pool with this name and display name is taken."""
        names = (name, display_name) if display_name else (name,)

        def matches(patterns: tuple[re.Pattern[str], ...]) -> bool:
            return any(p.fullmatch(n) for p in patterns for n in names)

        return (not self.include or matches(self.include)) and not matches(self.exclude)


@dataclass(frozen=True)
class Target:
    """One ModelArts project in one region, with its credentials and what to poll there."""

    project_id: str
    region: str
    endpoint: str
    iam_endpoint: str
    pools: tuple[str, ...]
    job_types: tuple[str, ...]
    credentials: Credentials
    max_concurrency: int
    #: Pools found through ListPools, polled besides ``pools``; None: no discovery.
    discovery: Discovery | None = None
    #: The request budget (``exporter.budget``): average rate and burst, retries included.
    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND
    burst: int = DEFAULT_BURST


@dataclass(frozen=True)
class Config:
    poll_interval: float
    stale_after: float
    jitter: float
    timeout: float
    max_concurrency: int
    max_response_bytes: int
    retry: RetryPolicy
    targets: tuple[Target, ...]
    #: Defaults of the targets' request budgets (each target may override them).
    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND
    burst: int = DEFAULT_BURST


# ---------------------------------------------------------------------------- secrets

FileReader = Callable[[str], str]


@dataclass(frozen=True)
class _Context:
    environ: Mapping[str, str]
    read_file: FileReader


def _secret(value: object, path: str, ctx: _Context) -> Secret:
    """A literal string, ``{env: NAME}`` or ``{file: PATH}`` (trailing newline dropped)."""
    if isinstance(value, str) and value.strip():
        return _checked(Secret(value.strip(), "config file"), path)
    section = Section(value, path, ("env", "file"))
    env = section.take("env", string, "")
    file = section.take("file", string, "")
    if bool(env) == bool(file):
        raise ConfigError(path, "give a string, or exactly one of 'env' or 'file'")
    if env:
        if not ctx.environ.get(env, "").strip():
            raise ConfigError(path, f"environment variable {env} is not set")
        return _checked(Secret(ctx.environ[env].strip(), f"env {env}"), path)
    try:
        return read_secret_file(file, ctx.read_file)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None


def read_secret_file(file: str, read_file: FileReader) -> Secret:
    """The secret in ``file``, surrounding white space dropped; a ``ValueError`` saying why
    (never quoting the content) when it cannot be read, is empty or has control characters.
    Used at load, and again by ``exporter.credentials`` when the file changes."""
    try:
        content = read_file(file).strip()
    except OSError as exc:
        raise ValueError(f"cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"cannot read {file}: not UTF-8 text") from None
    except ValueError as exc:  # a NUL character in the file name
        raise ValueError(f"cannot read {file!r}: {exc}") from None
    if not content:
        raise ValueError(f"{file} is empty")
    return _printable(Secret(content, f"file {file}", file))


def _printable(secret: Secret) -> Secret:
    """Refuse control characters inside a secret (surrounding white space is already gone):
    they would make an illegal HTTP header whose error message quotes the value."""
    if any(not char.isprintable() for char in secret.reveal()):
        raise ValueError(f"the value from {secret.source} contains control characters")
    return secret


def _checked(secret: Secret, path: str) -> Secret:
    """``_printable``, its error a ``ConfigError`` at ``path``."""
    try:
        return _printable(secret)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None


def _default_env(name: str) -> object:
    return {"env": name}


def _raw(value: object, path: str) -> object:
    return value


_AKSK_KEYS = ("access_key", "secret_key", "security_token")
_PASSWORD_KEYS = ("user", "password", "domain")


def _credentials(value: object, path: str, ctx: _Context) -> Credentials:
    section = Section(value, path, ("type", *_AKSK_KEYS, *_PASSWORD_KEYS, "url"))
    kind = section.take("type", string, "aksk")
    if kind == "aksk":
        section.only(("type", *_AKSK_KEYS))
        access = section.take("access_key", _raw, _default_env(DEFAULT_ACCESS_KEY_ENV))
        secret = section.take("secret_key", _raw, _default_env(DEFAULT_SECRET_KEY_ENV))
        token: object = section.take("security_token", _raw, None)
        # With the SDK's default variables, the SDK's optional token variable applies too.
        uses_sdk_env = not section.has("access_key")
        if token is None and uses_sdk_env and ctx.environ.get(DEFAULT_SECURITY_TOKEN_ENV):
            token = _default_env(DEFAULT_SECURITY_TOKEN_ENV)
        return AkSkCredentials(
            access_key=_secret(access, section.at("access_key"), ctx),
            secret_key=_secret(secret, section.at("secret_key"), ctx),
            security_token=None
            if token is None
            else _secret(token, section.at("security_token"), ctx),
        )
    if kind == "password":
        section.only(("type", *_PASSWORD_KEYS))
        user = section.take("user", string)
        password = section.take("password", lambda v, p: _secret(v, p, ctx))
        domain = section.take("domain", string)
        return PasswordCredentials(user=user, password=password, domain=domain)
    if kind == "metadata":
        section.only(("type", "url"))
        return MetadataCredentials(url=section.take("url", url, MetadataCredentials.url))
    raise ConfigError(
        section.at("type"), f"expected 'aksk', 'password' or 'metadata', got {kind!r}"
    )


# ---------------------------------------------------------------------------- targets

_PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_REGION = re.compile(r"^[a-z]+(-[a-z]+)*-[0-9]+$")


def _project_id(value: object, path: str) -> str:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not 32 <= len(text) <= 36:
        raise ConfigError(path, f"must be 32-36 characters, got {len(text)}")
    if not _PROJECT_ID.match(text):
        raise ConfigError(path, "may contain only letters, digits, '-' and '_'")
    return text


def _region(value: object, path: str) -> str:
    text = string(value, path)
    if not _REGION.match(text):
        raise ConfigError(path, f"expected a region id like cn-north-4, got {text!r}")
    return text


def modelarts_endpoint(region: str) -> str:
    domain = "myhuaweicloud.cn" if region == "ap-southeast-1" else "myhuaweicloud.com"
    return f"https://modelarts.{region}.{domain}"


def iam_endpoint(region: str) -> str:
    return f"https://iam.{region}.myhuaweicloud.com"


def _job_types(value: object, path: str) -> tuple[str, ...]:
    return Section(value, path, ("job_types",)).take("job_types", string_list, _NONE)


#: Pool discovery is refreshed this often unless configured (or poll_interval, if longer).
DEFAULT_REFRESH_INTERVAL = 300.0


#: The values ListPools documents for its ``status`` filter: pool creation states (the API
#: Reference and the official SDK's ``ListPoolsRequest``), not the phases.
CREATION_STATES = ("created", "creating", "failed")


def _creation_state(value: object, path: str) -> str:
    text = string(value, path)
    if text not in CREATION_STATES:
        listed = ", ".join(CREATION_STATES)
        raise ConfigError(path, f"expected one of {listed} (pool creation states), got {text!r}")
    return text


def _discovery(value: object, path: str, poll_interval: float) -> Discovery:
    keys = ("workspace_id", "status", "label_selector", "include", "exclude", "refresh_interval")
    section = Section(value, path, keys)
    refresh = section.take(
        "refresh_interval", parse_duration, max(DEFAULT_REFRESH_INTERVAL, poll_interval)
    )
    if refresh < poll_interval:
        raise ConfigError(section.at("refresh_interval"), "must be at least poll_interval")
    return Discovery(
        workspace_id=section.take("workspace_id", word, None),
        status=section.take("status", _creation_state, None),
        label_selector=section.take("label_selector", word, None),
        include=section.take("include", patterns, ()),
        exclude=section.take("exclude", patterns, ()),
        refresh_interval=refresh,
    )


_TARGET_KEYS = (
    "project_id",
    "region",
    "endpoint",
    "iam_endpoint",
    "pools",
    "resource_specs",
    "credentials",
    "max_concurrency",
    "requests_per_second",
    "burst",
    "discovery",
)


@dataclass(frozen=True)
class _TargetDefaults:
    """Top-level values a target inherits; ``burst`` is None when not set at the top."""

    max_concurrency: int
    requests_per_second: float
    burst: int | None
    poll_interval: float


def _target(value: object, path: str, ctx: _Context, defaults: _TargetDefaults) -> Target:
    section = Section(value, path, _TARGET_KEYS)
    project_id = section.take("project_id", _project_id)
    region = section.take("region", _region)
    rate = section.take("requests_per_second", positive_number, defaults.requests_per_second)
    # An unset burst follows this target's own rate unless the top level sets one.
    burst = defaults.burst if defaults.burst is not None else default_burst(rate)
    target = Target(
        project_id=project_id,
        region=region,
        endpoint=section.take("endpoint", url, modelarts_endpoint(region)),
        iam_endpoint=section.take("iam_endpoint", url, iam_endpoint(region)),
        pools=section.take("pools", string_list, _NONE),
        job_types=section.take("resource_specs", _job_types, _NONE),
        credentials=section.take("credentials", lambda v, p: _credentials(v, p, ctx), None)
        or _credentials({}, section.at("credentials"), ctx),
        max_concurrency=section.take("max_concurrency", positive_int, defaults.max_concurrency),
        requests_per_second=rate,
        burst=section.take("burst", positive_int, burst),
        # Present, even empty (``discovery:``), turns discovery on with its defaults.
        discovery=_discovery(
            section.data["discovery"], section.at("discovery"), defaults.poll_interval
        )
        if "discovery" in section.data
        else None,
    )
    if not target.pools and not target.job_types and target.discovery is None:
        raise ConfigError(path, "nothing to poll: set pools, discovery or resource_specs.job_types")
    return target


def _targets(
    value: object, path: str, ctx: _Context, defaults: _TargetDefaults
) -> tuple[Target, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(path, "expected a non-empty list of targets")
    targets = tuple(_target(item, f"{path}[{i}]", ctx, defaults) for i, item in enumerate(value))
    for i, target in enumerate(targets):
        for j, earlier in enumerate(targets[:i]):
            if earlier.project_id == target.project_id:
                raise ConfigError(f"{path}[{i}].project_id", f"same project as {path}[{j}]")
    return targets


def _retry(value: object, path: str) -> RetryPolicy:
    section = Section(value, path, ("max_attempts", "initial_backoff", "max_backoff"))
    default = RetryPolicy()
    policy = RetryPolicy(
        max_attempts=section.take("max_attempts", positive_int, default.max_attempts),
        initial_backoff=section.take("initial_backoff", parse_duration, default.initial_backoff),
        max_backoff=section.take("max_backoff", parse_duration, default.max_backoff),
    )
    if policy.initial_backoff > policy.max_backoff:
        raise ConfigError(section.at("initial_backoff"), "must not exceed max_backoff")
    return policy


# ---------------------------------------------------------------------------- top level

_TOP_LEVEL_KEYS = (
    "poll_interval",
    "stale_after",
    "jitter",
    "timeout",
    "max_concurrency",
    "max_response_bytes",
    "requests_per_second",
    "burst",
    "retry",
    "targets",
)


def parse(
    data: object,
    environ: Mapping[str, str],
    read_file: FileReader = lambda p: Path(p).read_text(encoding="utf-8"),
) -> Config:
    """Validate a decoded YAML document; raise ``ConfigError`` naming the first bad key."""
    ctx = _Context(environ=environ, read_file=read_file)
    root = Section(expand_environment(data, environ, ""), "", _TOP_LEVEL_KEYS)
    interval = root.take("poll_interval", parse_duration, 60.0)
    max_concurrency = root.take("max_concurrency", positive_int, 8)
    rate = root.take("requests_per_second", positive_number, DEFAULT_REQUESTS_PER_SECOND)
    burst: int | None = root.take("burst", positive_int, None)
    defaults = _TargetDefaults(max_concurrency, rate, burst, interval)
    config = Config(
        poll_interval=interval,
        stale_after=root.take("stale_after", parse_duration, 3 * interval),
        jitter=root.take("jitter", _non_negative_duration, min(5.0, interval / 10)),
        timeout=root.take("timeout", parse_duration, 10.0),
        max_concurrency=max_concurrency,
        max_response_bytes=root.take("max_response_bytes", positive_int, 4 * 1024 * 1024),
        retry=root.take("retry", _retry, RetryPolicy()),
        targets=root.take("targets", lambda v, p: _targets(v, p, ctx, defaults)),
        requests_per_second=rate,
        burst=default_burst(rate) if burst is None else burst,
    )
    if config.stale_after < config.poll_interval:
        raise ConfigError("stale_after", "must be at least poll_interval")
    if config.jitter >= config.poll_interval:
        raise ConfigError("jitter", "must be less than poll_interval")
    return config


def _non_negative_duration(value: object, path: str) -> float:
    if isinstance(value, int | str) and not isinstance(value, bool) and value in {0, "0"}:
        return 0.0
    return parse_duration(value, path)


def load(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and parse a config file; every problem becomes a ``ConfigError``."""
    data = read_yaml(Path(path), "config file")
    return parse(data, os.environ if environ is None else environ)


_CREDENTIAL_TYPES: dict[type, str] = {
    AkSkCredentials: "aksk",
    PasswordCredentials: "password",
    MetadataCredentials: "metadata",
}


def redacted(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data, every secret replaced by its source."""

    def plain(node: object) -> object:
        if isinstance(node, Secret):
            return str(node)
        if isinstance(node, re.Pattern):
            return node.pattern
        if hasattr(node, "__dataclass_fields__"):
            fields = {name: plain(getattr(node, name)) for name in node.__dataclass_fields__}
            kind = _CREDENTIAL_TYPES.get(type(node))
            return fields if kind is None else {"type": kind, **fields}
        if isinstance(node, tuple | list):
            return [plain(v) for v in node]
        return node

    result = plain(config)
    assert isinstance(result, dict)
    return result


def iter_secrets(config: Config) -> Iterator[Secret]:
    """Every secret value in the config (for log scrubbing)."""
    for target in config.targets:
        creds = target.credentials
        if isinstance(creds, AkSkCredentials):
            yield creds.access_key
            yield creds.secret_key
            if creds.security_token is not None:
                yield creds.security_token
        elif isinstance(creds, PasswordCredentials):
            yield creds.password
