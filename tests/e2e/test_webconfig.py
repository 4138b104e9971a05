"""``--web.config.file``: TLS, client certificates and basic auth, over real sockets.

Bad web configs live in ``tests/fixtures/web/*.bad.yml``, each starting with
``# error: <text>``, a substring of the ``ConfigError`` it must raise; good ones in
``*.ok.yml``. The CA, server and client certificates are made at test time.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import io
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from exporter import webconfig
from exporter.errors import ConfigError
from exporter.logs import make_logger
from exporter.server import MetricsServer
from exporter.webconfig import WebConfig, WebConfigFile, WebGuard
from tests.support.processes import run_cli, start_exporter
from tests.unit.test_config import expected_error

FIXTURES = Path(__file__).parent.parent / "fixtures" / "web"
BAD = sorted(FIXTURES.glob("*.bad.yml"))
OK = sorted(FIXTURES.glob("*.ok.yml"))

USER = "prometheus"
PASSWORD = "scrape-password-sentinel"
NEW_PASSWORD = "rotated-password-sentinel"
BODY = b"modelarts_up 1\n"
KeyPair = tuple[Path, Path]


def bcrypt_hash(password: str) -> str:
    """A cheap (cost 4) bcrypt hash: the tests make many; real ones cost 10 or more."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


# ---------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def _new_ca(common_name: str) -> Issuer:
    return Issuer(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]), _key())


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: Issuer, *, server: bool | None
) -> x509.Certificate:
    """A CA certificate when ``server`` is None, else a server or client certificate."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=server is None, path_length=None), critical=True)
    )
    if server is None:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    elif server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer.key, hashes.SHA256())


def _write(
    directory: Path,
    name: str,
    cert: x509.Certificate,
    key: Any,
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption(),  # noqa: B008
) -> KeyPair:
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pkcs8 = serialization.PrivateFormat.PKCS8
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, pkcs8, encryption))
    return cert_file, key_file


def _issue(directory: Path, name: str, issuer: Issuer, *, server: bool) -> KeyPair:
    key = _key()
    return _write(directory, name, _certificate(name, key, issuer, server=server), key)


@dataclass(frozen=True)
class Pki:
    """A CA with a server and a client certificate, and a client certificate of another CA."""

    directory: Path
    ca: Issuer
    ca_file: Path
    server: KeyPair
    client: KeyPair
    stranger: KeyPair

    def issue_server(self, name: str) -> KeyPair:
        return _issue(self.directory, name, self.ca, server=True)

    def client_context(
        self, cert: KeyPair | None = None, maximum: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        """A client that trusts this CA, shows ``cert``, and speaks TLS up to ``maximum``."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if cert is not None:
            context.load_cert_chain(*cert)
        if maximum is not None:
            context.maximum_version = maximum
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = _new_ca("test CA"), _new_ca("another CA")
    ca_file, _ = _write(directory, "ca", _certificate("test CA", ca.key, ca, server=None), ca.key)
    return Pki(
        directory=directory,
        ca=ca,
        ca_file=ca_file,
        server=_issue(directory, "server", ca, server=True),
        client=_issue(directory, "client", ca, server=False),
        stranger=_issue(directory, "stranger", other, server=False),
    )


# ---------------------------------------------------------------------------- servers


@dataclass
class Served:
    """A MetricsServer on loopback with a web config file; ``logs()`` are its JSON lines."""

    port: int
    path: Path
    stream: io.StringIO

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def rewrite(self, text: str) -> None:
        """Replace the file as Kubernetes does: a new file renamed over the old one."""
        fresh = self.path.with_suffix(".new")
        fresh.write_text(text)
        os.replace(fresh, self.path)


def web_yaml(
    pki: Pki | None = None,
    *,
    users: dict[str, str] | None = None,
    client_auth: str | None = None,
    min_version: str | None = None,
    server: KeyPair | None = None,
) -> str:
    """A web config: TLS with ``pki``'s server certificate when given, basic auth with
    ``users`` (name → password, hashed here)."""
    lines: list[str] = []
    if pki is not None:
        cert, key = server or pki.server
        lines += ["tls_server_config:", f"  cert_file: {cert.name}", f"  key_file: {key}"]
        if client_auth is not None:
            lines += [f"  client_auth_type: {client_auth}", f"  client_ca_file: {pki.ca_file}"]
        if min_version is not None:
            lines += [f"  min_version: {min_version}"]
    if users:
        lines += ["basic_auth_users:"]
        lines += [f"  {name}: {bcrypt_hash(password)}" for name, password in users.items()]
    return "\n".join(lines) + "\n"


def payload(openmetrics: bool, gzipped: bool) -> tuple[str, tuple[bytes]]:
    return "text/plain; version=0.0.4", (gzip.compress(BODY) if gzipped else BODY,)


@pytest.fixture
def serve(pki: Pki) -> Iterator[Callable[[str], Served]]:
    """Start a server with the given web config, written next to the certificates (whose
    relative names it uses); every check of the file reloads it when it changed."""
    servers: list[MetricsServer] = []

    def start(text: str) -> Served:
        path = pki.directory / f"web-{len(servers)}.yml"
        path.write_text(text)
        stream = io.StringIO()
        web = WebConfigFile(path, make_logger("info", "json", stream=stream), interval=0)
        server = MetricsServer("127.0.0.1:0", payload, lambda: True, web)
        server.start()
        servers.append(server)
        return Served(server.port, path, stream)

    yield start
    for server in servers:
        server.stop()


def basic(user: str, password: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(user, password)


def authorization(user: str, password: str) -> str:
    """The ``Authorization`` header of basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def raw_request(port: int, context: ssl.SSLContext, path: str = "/metrics") -> bytes:
    """One request through ``ssl`` directly; the first bytes of the answer."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return tls.recv(4096)


def assert_refused(port: int, context: ssl.SSLContext) -> None:
    """The handshake fails: no HTTP answer comes back (TLS 1.3 reports a refused client
    certificate at the client's first read, not in its handshake)."""
    try:
        answer = raw_request(port, context)
    except (ssl.SSLError, ConnectionError):
        return
    assert not answer.startswith(b"HTTP/"), answer


# ---------------------------------------------------------------------------- tests


class TestFixtureFiles:
    def test_fixture_sets_are_present(self) -> None:
        """The fixture directory holds good and bad web configs (so parametrizing runs)."""
        assert len(OK) >= 2
        assert len(BAD) >= 15

    @pytest.mark.parametrize("path", BAD, ids=[p.name.removesuffix(".bad.yml") for p in BAD])
    def test_bad_web_config_raises_documented_error(self, path: Path) -> None:
        """Each bad file raises ConfigError containing the text of its '# error:' line."""
        with pytest.raises(ConfigError) as info:
            webconfig.load(path)
        assert expected_error(path) in str(info.value)

    @pytest.mark.parametrize("path", OK, ids=[p.name.removesuffix(".ok.yml") for p in OK])
    def test_good_web_config_loads(self, path: Path) -> None:
        """Each good file loads (these have no TLS: certificates are made at test time)."""
        assert webconfig.load(path).tls is None


class TestParse:
    def test_relative_files_are_taken_from_the_web_config_directory(self, tmp_path: Path) -> None:
        """cert_file, key_file and client_ca_file are relative to the web config's directory;
        absolute names stay as they are. min_version defaults to TLS12."""
        data = {
            "tls_server_config": {
                "cert_file": "tls/server.crt",
                "key_file": "/etc/keys/server.key",
                "client_auth_type": "RequireAndVerifyClientCert",
                "client_ca_file": "ca.crt",
            }
        }
        tls = webconfig.parse(data, tmp_path).tls
        assert tls is not None
        assert (tls.cert_file, tls.key_file) == (
            tmp_path / "tls/server.crt",
            Path("/etc/keys/server.key"),
        )
        assert tls.client_ca_file == tmp_path / "ca.crt"
        assert tls.min_version is ssl.TLSVersion.TLSv1_2

    def test_a_password_where_a_hash_belongs_is_never_echoed(self) -> None:
        """A plain password given instead of a bcrypt hash is refused without quoting it."""
        with pytest.raises(ConfigError) as info:
            webconfig.parse({"basic_auth_users": {"alice": PASSWORD}}, Path())
        assert info.value.path == "basic_auth_users.alice"
        assert PASSWORD not in str(info.value)

    def test_redacted_shows_tls_as_read_and_users_without_hashes(self, tmp_path: Path) -> None:
        """What check-config prints: resolved file names, the TLS version by its name, user
        names with a placeholder for the hash."""
        hashed = bcrypt_hash(PASSWORD)
        data = {
            "tls_server_config": {
                "cert_file": "s.crt",
                "key_file": "s.key",
                "min_version": "TLS13",
            },
            "basic_auth_users": {"alice": hashed},
        }
        shown = webconfig.redacted(webconfig.parse(data, tmp_path))
        assert shown == {
            "tls_server_config": {
                "cert_file": str(tmp_path / "s.crt"),
                "key_file": str(tmp_path / "s.key"),
                "min_version": "TLS13",
                "client_auth_type": "NoClientCert",
                "client_ca_file": None,
            },
            "basic_auth_users": {"alice": "<bcrypt hash>"},
        }

    def test_an_empty_file_protects_nothing(self) -> None:
        """An empty web config means plain HTTP without auth, as in exporter-toolkit."""
        assert webconfig.parse(None, Path()) == WebConfig()
        assert WebGuard(WebConfig(), None).authorized(None)


def assert_tls_refused(tmp_path: Path, match: str, cert: Path, key: Path, more: str = "") -> None:
    """Loading a web config with these TLS files raises a ConfigError matching ``match``."""
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n{more}")
    with pytest.raises(ConfigError, match=match):
        webconfig.load(path)


class TestServerContext:
    def test_certificate_and_key_that_do_not_match(self, pki: Pki, tmp_path: Path) -> None:
        """A key of another certificate is refused at load, naming cert_file."""
        match = r"tls_server_config\.cert_file: cannot use"
        assert_tls_refused(tmp_path, match, pki.server[0], pki.client[1])

    def test_encrypted_key_is_refused_without_prompting(self, pki: Pki, tmp_path: Path) -> None:
        """An encrypted key is an error naming key_file, never a password prompt."""
        cert = x509.load_pem_x509_certificate(pki.server[0].read_bytes())
        key = serialization.load_pem_private_key(pki.server[1].read_bytes(), None)
        locked = serialization.BestAvailableEncryption(b"secret")
        _, encrypted = _write(tmp_path, "encrypted", cert, key, locked)
        match = r"tls_server_config\.key_file: .* is encrypted"
        assert_tls_refused(tmp_path, match, pki.server[0], encrypted)

    def test_client_ca_file_without_certificates(self, pki: Pki, tmp_path: Path) -> None:
        """A client_ca_file holding no certificate is refused, naming the key."""
        cert, key = pki.server
        more = f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {key}\n"
        assert_tls_refused(tmp_path, r"tls_server_config\.client_ca_file: ", cert, key, more)


class TestBasicAuth:
    @pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/", "/nope"])
    def test_every_path_needs_the_password(self, serve: Callable[[str], Served], path: str) -> None:
        """Without credentials, or with a wrong password or user, every path answers 401
        with WWW-Authenticate: Basic; the right password gets the usual answer."""
        url = serve(web_yaml(users={USER: PASSWORD})).http + path
        for auth in (None, basic(USER, "wrong"), basic("nobody", PASSWORD)):
            response = httpx.get(url, auth=auth)
            assert response.status_code == 401, auth
            assert response.headers["WWW-Authenticate"] == "Basic"
        expected = 404 if path == "/nope" else 200
        assert httpx.get(url, auth=basic(USER, PASSWORD)).status_code == expected

    def test_metrics_body_and_head_behind_auth(self, serve: Callable[[str], Served]) -> None:
        """With the password /metrics serves its bytes; a refused HEAD has no body, and a
        keep-alive connection goes on after a 401."""
        url = serve(web_yaml(users={USER: PASSWORD})).http + "/metrics"
        with httpx.Client() as client:
            refused = client.head(url)
            assert (refused.status_code, refused.content) == (401, b"")
            assert client.get(url, auth=basic(USER, PASSWORD)).content == BODY

    def test_malformed_authorization_headers_are_refused(
        self, serve: Callable[[str], Served]
    ) -> None:
        """Another scheme, bad base64 or no colon: 401, never an error."""
        url = serve(web_yaml(users={USER: PASSWORD})).http + "/metrics"
        headers = ("Bearer abc", "Basic !!!", "Basic cHJvbWV0aGV1cw==", "Basic", "Basic é/8=")
        for header in headers:
            assert (
                httpx.get(url, headers={b"Authorization": header.encode("latin-1")}).status_code
                == 401
            )

    def test_a_password_is_checked_with_bcrypt_once(self) -> None:
        """A good (user, password) is remembered: bcrypt runs once for it, while a wrong
        password and an unknown user are checked (against a dummy hash) every time."""
        calls: list[bytes] = []

        def check(password: bytes, hashed: bytes) -> bool:
            calls.append(password)
            return bcrypt.checkpw(password, hashed)

        guard = WebGuard(WebConfig(users={USER: bcrypt_hash(PASSWORD).encode()}), None, check)
        good = authorization(USER, PASSWORD)
        assert all(guard.authorized(good) for _ in range(5))
        bad = [authorization(user, "x") for user in (USER, "nobody")]
        assert not any(guard.authorized(header) for header in bad * 2)
        assert calls == [PASSWORD.encode()] + [b"x"] * 4

    def test_bcrypt_holds_no_lock_against_other_scrapes(self) -> None:
        """While one password is being checked, a remembered one is still let in at once."""
        release = threading.Event()

        def check(password: bytes, hashed: bytes) -> bool:
            if password == b"slow":
                release.wait(10)
                return False
            return bcrypt.checkpw(password, hashed)

        guard = WebGuard(WebConfig(users={USER: bcrypt_hash(PASSWORD).encode()}), None, check)
        good = authorization(USER, PASSWORD)
        assert guard.authorized(good)
        slow = threading.Thread(target=guard.authorized, args=(authorization(USER, "slow"),))
        slow.start()
        try:
            started = time.monotonic()
            assert guard.authorized(good)
            assert time.monotonic() - started < 1
            assert slow.is_alive()
        finally:
            release.set()
            slow.join()

    def test_passwords_longer_than_bcrypt_takes_are_refused(self) -> None:
        """bcrypt reads 72 bytes; a longer password is refused, not cut to a match."""
        long = "p" * 72
        guard = WebGuard(WebConfig(users={USER: bcrypt_hash(long).encode()}), None)
        assert guard.authorized(authorization(USER, long))
        assert not guard.authorized(authorization(USER, long + "q"))


class TestTls:
    def test_https_with_the_ca(self, pki: Pki, serve: Callable[[str], Served]) -> None:
        """TLS serves every path to a client that trusts the CA; with basic auth too."""
        served = serve(web_yaml(pki, users={USER: PASSWORD}))
        context = pki.client_context()
        assert httpx.get(served.https + "/metrics", verify=context).status_code == 401
        response = httpx.get(served.https + "/metrics", verify=context, auth=basic(USER, PASSWORD))
        assert (response.status_code, response.content) == (200, BODY)
        assert raw_request(served.port, context, "/healthz").startswith(b"HTTP/1.1 401")

    def test_require_and_verify_client_cert(self, pki: Pki, serve: Callable[[str], Served]) -> None:
        """RequireAndVerifyClientCert: no client certificate and one from another CA fail the
        handshake; the CA's own client certificate gets 200, for /healthz too."""
        served = serve(web_yaml(pki, client_auth="RequireAndVerifyClientCert"))
        for refused in (pki.client_context(), pki.client_context(pki.stranger)):
            assert_refused(served.port, refused)
            with pytest.raises(httpx.TransportError):
                httpx.get(served.https + "/metrics", verify=refused)
        context = pki.client_context(pki.client)
        assert httpx.get(served.https + "/metrics", verify=context).content == BODY
        assert raw_request(served.port, context, "/healthz").startswith(b"HTTP/1.1 200")

    def test_verify_client_cert_if_given(self, pki: Pki, serve: Callable[[str], Served]) -> None:
        """VerifyClientCertIfGiven: no certificate is fine, a foreign one is not."""
        served = serve(web_yaml(pki, client_auth="VerifyClientCertIfGiven"))
        assert httpx.get(served.https + "/metrics", verify=pki.client_context()).status_code == 200
        assert_refused(served.port, pki.client_context(pki.stranger))

    def test_min_version_tls13_refuses_a_tls12_client(
        self, pki: Pki, serve: Callable[[str], Served]
    ) -> None:
        """min_version TLS13 refuses a client that speaks at most TLS 1.2; TLS12 takes it."""
        tls12 = pki.client_context(maximum=ssl.TLSVersion.TLSv1_2)
        strict = serve(web_yaml(pki, min_version="TLS13"))
        with pytest.raises(ssl.SSLError):
            raw_request(strict.port, tls12)
        assert raw_request(strict.port, pki.client_context()).startswith(b"HTTP/1.1 200")
        lenient = serve(web_yaml(pki, min_version="TLS12"))
        assert raw_request(lenient.port, tls12).startswith(b"HTTP/1.1 200")

    def test_plain_http_and_silent_clients_hold_up_no_one(
        self, pki: Pki, serve: Callable[[str], Served]
    ) -> None:
        """A plain HTTP request to the TLS port is answered 400 at once, and clients that
        never finish their handshake keep no one else waiting."""
        served = serve(web_yaml(pki))
        silent = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(3)]
        silent[0].sendall(b"\x16\x03\x01")  # the start of a TLS record, then nothing
        try:
            with socket.create_connection(("127.0.0.1", served.port), timeout=5) as plain:
                plain.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                assert plain.recv(4096).startswith(b"HTTP/1.0 400 Bad Request")
            started = time.monotonic()
            response = httpx.get(served.https + "/metrics", verify=pki.client_context(), timeout=5)
            assert response.status_code == 200
            assert time.monotonic() - started < 2
        finally:
            for sock in silent:
                sock.close()


class TestReload:
    def test_a_new_password_replaces_the_old(self, serve: Callable[[str], Served]) -> None:
        """When the file changes, the old password stops working (on a kept-alive
        connection too) and the new one works; the reload is logged."""
        served = serve(web_yaml(users={USER: PASSWORD}))
        url = served.http + "/metrics"
        with httpx.Client() as client:
            assert client.get(url, auth=basic(USER, PASSWORD)).status_code == 200
            served.rewrite(web_yaml(users={USER: NEW_PASSWORD}))
            assert client.get(url, auth=basic(USER, PASSWORD)).status_code == 401
            assert client.get(url, auth=basic(USER, NEW_PASSWORD)).status_code == 200
        assert [e["event"] for e in served.logs()] == ["web_config_reloaded"]

    def test_an_invalid_file_keeps_the_old_config(self, serve: Callable[[str], Served]) -> None:
        """A broken new file keeps the last good config and logs web_config_reload_failed,
        once while it stays broken; fixing it reloads."""
        served = serve(web_yaml(users={USER: PASSWORD}))
        url = served.http + "/metrics"
        served.rewrite("basic_auth_users:\n  prometheus: " + NEW_PASSWORD + "\n")
        for _ in range(3):
            assert httpx.get(url, auth=basic(USER, PASSWORD)).status_code == 200
        served.rewrite(web_yaml(users={USER: NEW_PASSWORD}))
        assert httpx.get(url, auth=basic(USER, NEW_PASSWORD)).status_code == 200
        logs = served.logs()
        assert [e["event"] for e in logs] == ["web_config_reload_failed", "web_config_reloaded"]
        assert "basic_auth_users.prometheus: expected a bcrypt hash" in logs[0]["error"]
        assert NEW_PASSWORD not in served.stream.getvalue()

    @pytest.mark.parametrize(
        ("text", "error"),
        [
            pytest.param(
                "basic_auth_users:\n  alice: 2024-02-30\n",
                "basic_auth_users.alice: expected a bcrypt hash",
                id="date",
            ),
            pytest.param(
                "basic_auth_users:\n  alice: " + "1" * 5_000 + "\n",
                "at line 2, column 10: an integer with too many digits",
                id="long-int",
            ),
            pytest.param("[" * 1_200 + "]" * 1_200, "nested too deeply", id="deep"),
        ],
    )
    def test_yaml_pyyaml_cannot_build_keeps_the_old_config(
        self, serve: Callable[[str], Served], text: str, error: str
    ) -> None:
        """A changed file that PyYAML parses but cannot build into values (a date out of
        range, an integer too long, nesting too deep) keeps the last good config: requests
        are still answered, and web_config_reload_failed says where the problem is."""
        served = serve(web_yaml(users={USER: PASSWORD}))
        served.rewrite(text)
        response = httpx.get(served.http + "/metrics", auth=basic(USER, PASSWORD))
        assert response.status_code == 200
        (failed,) = served.logs()
        assert failed["event"] == "web_config_reload_failed"
        assert error in failed["error"]

    def test_tls_cannot_be_turned_off_by_a_reload(
        self, pki: Pki, serve: Callable[[str], Served]
    ) -> None:
        """Dropping tls_server_config is refused: the server keeps serving TLS."""
        served = serve(web_yaml(pki))
        served.rewrite(web_yaml(users={USER: PASSWORD}))
        assert httpx.get(served.https + "/metrics", verify=pki.client_context()).content == BODY
        assert served.logs()[0]["event"] == "web_config_reload_failed"
        assert "takes a restart" in served.logs()[0]["error"]

    def test_a_renewed_certificate_is_served_to_new_connections(
        self, pki: Pki, serve: Callable[[str], Served]
    ) -> None:
        """Replacing the certificate and key files (same names) is a change too."""
        served = serve(web_yaml(pki, server=pki.issue_server("renewing")))
        context = pki.client_context()

        def serial() -> int:
            with (
                socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                der = tls.getpeercert(binary_form=True)
                assert der is not None
                return x509.load_der_x509_certificate(der).serial_number

        before = serial()
        pki.issue_server("renewing")
        assert serial() != before

    def test_the_files_are_looked_at_once_per_interval(self, tmp_path: Path) -> None:
        """Between two checks a change is not seen; after the interval it is."""
        now = [0.0]
        path = tmp_path / "web.yml"
        path.write_text(web_yaml(users={USER: PASSWORD}))
        web = WebConfigFile(path, make_logger(stream=io.StringIO()), clock=lambda: now[0])
        first = web.current()
        path.write_text(web_yaml(users={USER: NEW_PASSWORD}))
        now[0] = 0.9
        assert web.current() is first
        now[0] = 1.0
        assert web.current() is not first
        assert web.current().authorized(authorization(USER, NEW_PASSWORD))


GOOD_CONFIG = """
poll_interval: 30s
targets:
  - project_id: "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"
    region: cn-north-4
    endpoint: http://127.0.0.1:9
    pools: [pool-a]
"""
ENV = {**os.environ, "HUAWEICLOUD_SDK_AK": "WEBCONFIGACCESSKEY00", "HUAWEICLOUD_SDK_SK": "sk-1"}


@pytest.mark.e2e
class TestCommandLine:
    def test_invalid_web_config_exits_2_naming_the_key(self, tmp_path: Path) -> None:
        """The exporter refuses to start on a bad web config: exit 2, the key on stderr."""
        config = tmp_path / "config.yaml"
        config.write_text(GOOD_CONFIG)
        web = tmp_path / "web.yml"
        web.write_text(
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: 1.2\n"
        )
        result = run_cli(f"--config.file={config}", f"--web.config.file={web}", env=ENV)
        assert result.returncode == 2
        assert "tls_server_config.min_version: expected one of TLS10" in result.stderr

    @pytest.mark.parametrize(
        ("text", "error"),
        [
            pytest.param("alice: 2024-02-30\n", "alice: unknown key", id="top"),
            pytest.param(
                "basic_auth_users:\n  alice: 2024-02-30\n",
                "basic_auth_users.alice: expected a",
                id="user",
            ),
        ],
    )
    def test_check_config_names_the_key_holding_a_date(
        self, tmp_path: Path, text: str, error: str
    ) -> None:
        """check-config with a web config holding a date (valid YAML, not a valid date)
        exits 2 naming the key, with no traceback."""
        config = tmp_path / "config.yaml"
        config.write_text(GOOD_CONFIG)
        web = tmp_path / "web.yml"
        web.write_text(text)
        result = run_cli(
            "check-config", f"--config.file={config}", f"--web.config.file={web}", env=ENV
        )
        assert result.returncode == 2
        assert error in result.stderr
        assert "Traceback" not in result.stderr

    def test_exporter_serves_tls_and_basic_auth(self, pki: Pki, tmp_path: Path) -> None:
        """The real exporter with --web.config.file: https, and 401 without the password."""
        config = tmp_path / "config.yaml"
        config.write_text(GOOD_CONFIG)
        web = tmp_path / "web.yml"
        web.write_text(
            web_yaml(pki, users={USER: PASSWORD}).replace(
                f"cert_file: {pki.server[0].name}", f"cert_file: {pki.server[0]}"
            )
        )
        exporter = start_exporter(config, tmp_path / "log", ENV, f"--web.config.file={web}")
        try:
            url = exporter.url.replace("http://", "https://") + "/metrics"
            context = pki.client_context()
            assert httpx.get(url, verify=context).status_code == 401
            response = httpx.get(url, verify=context, auth=basic(USER, PASSWORD))
            assert response.status_code == 200
            assert "modelarts_exporter_build_info" in response.text
        finally:
            exporter.kill()
        assert PASSWORD not in (tmp_path / "log").read_text()
