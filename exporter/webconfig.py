"""``--web.config.file``: TLS and basic auth for every endpoint, in exporter-toolkit's format.

The subset of Prometheus' exporter-toolkit web configuration that this exporter serves::

    tls_server_config:
      cert_file: server.crt            # relative paths: to the web config file's directory
      key_file: server.key
      min_version: TLS12               # TLS10, TLS11, TLS12 (default), TLS13
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert, VerifyClientCertIfGiven
      client_ca_file: ca.crt
    basic_auth_users:
      alice: $2y$10$...                # bcrypt hashes

``parse()`` is pure and returns a ``WebConfig`` or raises ``ConfigError`` naming the key.
``load()`` reads the file and every file it names, and returns a ``WebGuard``: the TLS context
for new connections and the basic auth check for each request. ``WebConfigFile`` keeps the
current guard and re-reads the file when it, or a file it names, changes; a broken new file
keeps the last good guard and logs ``web_config_reload_failed``.

A successful (user, password) check is remembered by the SHA-256 of ``user:password``, so
bcrypt's cost (tens of milliseconds) is paid once per password and not on every scrape. No
lock is held while bcrypt runs.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
from structlog.typing import FilteringBoundLogger

from exporter.errors import ConfigError
from exporter.sections import Section, join_path, string
from exporter.yamlfile import read_yaml

__all__ = [
    "TlsServerConfig",
    "WebConfig",
    "WebConfigFile",
    "WebGuard",
    "load",
    "parse",
    "redacted",
]

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
#: exporter-toolkit values that ask for a certificate without verifying it, which Python's
#: ``ssl`` cannot do: it verifies every client certificate it asks for.
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
#: exporter-toolkit keys this exporter does not implement: refused by name, never ignored.
_TOOLKIT_ONLY = {
    "": ("http_server_config", "rate_limit"),
    "tls_server_config": (
        "cert",
        "key",
        "client_ca",
        "client_allowed_sans",
        "max_version",
        "cipher_suites",
        "prefer_server_cipher_suites",
        "curve_preferences",
    ),
}
#: ``$2y$`` (or 2a, 2b), the cost (4-31), then 22 characters of salt and 31 of hash.
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
#: Checked for unknown users, so that a wrong name costs as long as a wrong password.
_NO_SUCH_USER = b"$2b$10$2NJa8lj1hRWnhEvmlGt8YOl7peug8f3ZQjMmQE8y9PPQHlgEZUb4i"
#: Remembered good passwords; more (a client trying variants of a good one) start afresh.
_MAX_VERIFIED = 1024
#: The file is looked at (a stat of it and of the files it names) at most this often.
CHECK_INTERVAL = 1.0


@dataclass(frozen=True)
class TlsServerConfig:
    cert_file: Path
    key_file: Path
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None


@dataclass(frozen=True)
class WebConfig:
    """A parsed web config: TLS when ``tls`` is set, basic auth when ``users`` is not empty."""

    tls: TlsServerConfig | None = None
    #: user name → bcrypt hash
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    def files(self) -> tuple[Path, ...]:
        """The files this config names, whose changes also reload it."""
        tls = self.tls
        if tls is None:
            return ()
        ca = () if tls.client_ca_file is None else (tls.client_ca_file,)
        return (tls.cert_file, tls.key_file, *ca)


# ---------------------------------------------------------------------------- parsing


def _one_of(choices: Mapping[str, Any]) -> Callable[[object, str], str]:
    def convert(value: object, path: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ConfigError(path, f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return convert


def _section(data: object, path: str, keys: tuple[str, ...]) -> Section:
    """``Section``, but an exporter-toolkit key this exporter lacks is named as such."""
    if isinstance(data, dict):
        for key in data:
            if key in _TOOLKIT_ONLY[path]:
                raise ConfigError(join_path(path, str(key)), "not supported by this exporter")
    return Section(data, path, keys)


def _tls(value: object, path: str, directory: Path) -> TlsServerConfig:
    keys = ("cert_file", "key_file", "min_version", "client_auth_type", "client_ca_file")
    section = _section(value, path, keys)

    def file(value: object, path: str) -> Path:
        return directory / string(value, path)

    client_auth = section.data.get("client_auth_type")
    if client_auth in _UNVERIFIED_CLIENT_AUTH:
        raise ConfigError(
            section.at("client_auth_type"),
            f"{client_auth} is not supported: Python's ssl verifies every client certificate "
            "it asks for; use RequireAndVerifyClientCert with client_ca_file",
        )
    tls = TlsServerConfig(
        cert_file=section.take("cert_file", file),
        key_file=section.take("key_file", file),
        min_version=TLS_VERSIONS[section.take("min_version", _one_of(TLS_VERSIONS), "TLS12")],
        client_auth_type=section.take(
            "client_auth_type", _one_of(CLIENT_AUTH_TYPES), "NoClientCert"
        ),
        client_ca_file=section.take("client_ca_file", file, None),
    )
    if tls.client_auth_type == "NoClientCert" and tls.client_ca_file is not None:
        raise ConfigError(
            section.at("client_ca_file"),
            "set client_auth_type too (RequireAndVerifyClientCert), or the CA is not used",
        )
    if tls.client_auth_type != "NoClientCert" and tls.client_ca_file is None:
        raise ConfigError(section.at("client_ca_file"), f"is required with {tls.client_auth_type}")
    return tls


def _users(value: object, path: str) -> dict[str, bytes]:
    if not isinstance(value, dict):
        raise ConfigError(path, "expected a mapping of user names to bcrypt hashes")
    users = {}
    for name, hashed in value.items():
        if not isinstance(name, str) or not name or ":" in name:
            # Not the name itself: "user:password" (no space after ':') is one YAML key.
            shown = name.partition(":")[0] if isinstance(name, str) else type(name).__name__
            raise ConfigError(path, f"{shown!r}...: a user name is a non-empty string without ':'")
        # The value is never quoted: it might be a password written where its hash belongs.
        match = _BCRYPT_HASH.match(hashed.strip()) if isinstance(hashed, str) else None
        if match is None or not 4 <= int(match[1]) <= 31:
            raise ConfigError(f"{path}.{name}", "expected a bcrypt hash like $2y$10$…")
        users[name] = hashed.strip().encode()
    return users


def parse(data: object, directory: Path) -> WebConfig:
    """Validate a decoded web config; relative file names are taken from ``directory``."""
    root = _section(data, "", ("tls_server_config", "basic_auth_users"))
    return WebConfig(
        tls=root.take("tls_server_config", lambda v, p: _tls(v, p, directory), None),
        users=root.take("basic_auth_users", _users, {}),
    )


def redacted(config: WebConfig) -> dict[str, object]:
    """The config as ``check-config`` prints it: file names as resolved, users without their
    hashes (a bcrypt hash can still be attacked offline)."""
    shown: dict[str, object] = {}
    tls = config.tls
    if tls is not None:
        version = next(name for name, v in TLS_VERSIONS.items() if v == tls.min_version)
        shown["tls_server_config"] = {
            "cert_file": str(tls.cert_file),
            "key_file": str(tls.key_file),
            "min_version": version,
            "client_auth_type": tls.client_auth_type,
            "client_ca_file": None if tls.client_ca_file is None else str(tls.client_ca_file),
        }
    shown["basic_auth_users"] = {name: "<bcrypt hash>" for name in config.users}
    return shown


# ---------------------------------------------------------------------------- loading


class _EncryptedKeyError(Exception):
    pass


def _no_password() -> str:
    raise _EncryptedKeyError  # instead of OpenSSL prompting on the terminal


def _readable(path: Path, key: str) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None


def server_context(tls: TlsServerConfig) -> ssl.SSLContext:
    """The server-side TLS context; every file problem is a ``ConfigError`` naming its key."""
    at = "tls_server_config."
    _readable(tls.cert_file, at + "cert_file")
    _readable(tls.key_file, at + "key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password)
    except _EncryptedKeyError:
        raise ConfigError(at + "key_file", f"{tls.key_file} is encrypted") from None
    except ssl.SSLError as exc:
        raise ConfigError(
            at + "cert_file",
            f"cannot use {tls.cert_file} with {tls.key_file}: {exc.reason or exc}",
        ) from None
    if tls.client_ca_file is not None:
        _readable(tls.client_ca_file, at + "client_ca_file")
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except ssl.SSLError as exc:
            problem = exc.reason or exc
            raise ConfigError(at + "client_ca_file", f"{tls.client_ca_file}: {problem}") from None
        context.verify_mode = CLIENT_AUTH_TYPES[tls.client_auth_type]
    return context


def _check_password(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # longer than bcrypt's 72 bytes: refused, as Go's bcrypt does
        return False


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``Basic base64(user:password)`` → (user, password); None when absent or malformed."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8
        return None
    return (user, password) if sep else None


class WebGuard:
    """One loaded web config: ``tls`` for new connections, ``authorized()`` for requests."""

    def __init__(
        self,
        config: WebConfig,
        tls: ssl.SSLContext | None,
        check: Callable[[bytes, bytes], bool] = _check_password,
    ) -> None:
        self.config = config
        self.tls = tls
        self._check = check  # (password, bcrypt hash) -> whether they match
        self._verified: dict[bytes, bool] = {}

    def authorized(self, authorization: str | None) -> bool:
        """Whether a request with this ``Authorization`` header may be answered."""
        users = self.config.users
        if not users:
            return True
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        # The user part holds no ':', so "user:password" names one pair only.
        key = hashlib.sha256(f"{user}:{password}".encode()).digest()
        if key in self._verified:
            return True
        hashed = users.get(user)
        # An unknown user is checked against a dummy hash, so that it takes as long.
        ok = self._check(password.encode(), hashed or _NO_SUCH_USER) and hashed is not None
        if ok:
            if len(self._verified) >= _MAX_VERIFIED:
                self._verified.clear()
            self._verified[key] = True
        return ok


def load(path: str | os.PathLike[str]) -> WebGuard:
    """Read and check the web config file and the files it names."""
    file = Path(path)
    config = parse(read_yaml(file, "web config file"), file.parent)
    return WebGuard(config, None if config.tls is None else server_context(config.tls))


# ---------------------------------------------------------------------------- watching

Signature = tuple[tuple[int, int, int] | None, ...]


def _signature(paths: tuple[Path, ...]) -> Signature:
    """What a cheap stat says of each file; any difference means it was changed or replaced."""
    stats: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            stats.append(None)
        else:
            stats.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stats)


class WebConfigFile:
    """The web config file, re-read when it or a file it names changes.

    ``current()`` is called for every connection and request. At most once per
    ``interval`` it stats the files; when they changed, it loads them again. A broken file
    keeps the last good guard (logged once per distinct error as
    ``web_config_reload_failed``), and is retried at each check until it loads. Turning TLS
    on or off takes a restart (the scrape's scheme changes too), so a reload that would is
    refused.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        log: FilteringBoundLogger,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self.path = Path(path)
        self._log = log
        self._clock = clock
        self._interval = interval
        before = _signature((self.path,))
        self._guard = load(self.path)
        self._signature = before + _signature(self._guard.config.files())
        self._next_check = clock() + interval
        self._failure: str | None = None
        self._lock = threading.Lock()

    def current(self) -> WebGuard:
        """The guard to apply now (reloaded first if the files changed)."""
        now = self._clock()
        if now >= self._next_check and self._lock.acquire(blocking=False):
            try:
                self._next_check = now + self._interval
                self._reload_if_changed()
            finally:
                self._lock.release()
        return self._guard

    def _successor(self) -> WebGuard:
        guard = load(self.path)
        if (guard.tls is None) != (self._guard.tls is None):
            raise ConfigError("tls_server_config", "turning TLS on or off takes a restart")
        return guard

    def _reload_if_changed(self) -> None:
        files = self._guard.config.files()
        signature = _signature((self.path, *files))
        if signature == self._signature:
            return
        try:
            guard = self._successor()
        except ConfigError as exc:
            if str(exc) != self._failure:
                self._failure = str(exc)
                self._log.error("web_config_reload_failed", path=str(self.path), error=str(exc))
            return
        if guard.config.files() != files:
            signature = signature[:1] + _signature(guard.config.files())
        self._guard, self._signature, self._failure = guard, signature, None
        self._log.info(
            "web_config_reloaded",
            path=str(self.path),
            tls=guard.tls is not None,
            basic_auth_users=len(guard.config.users),
        )
