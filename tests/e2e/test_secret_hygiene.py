"""Secret hygiene: real exporter processes run with sentinel credentials, and nothing they
print or serve holds one, in any obvious encoding.

The sentinels are long random strings made afresh for each run: an AK, SK and security
token (temporary credentials from the SDK variables), an IAM password, an AK/SK read from
files whose SK the simulator does not know, a wrong IAM password, basic-auth passwords for
``--web.config.file``, and an SK a broken config rotates to. The simulator is given what it
needs to accept the good ones; what it sees does not matter here.

Everything else is kept as text, each piece under a label (``Captured``): ``check-config``
on the good file and on broken ones, the exporter's start with broken web configs, every
answer of the running exporter (``/metrics`` plain, gzip and OpenMetrics, ``/``,
``/healthz``, ``/readyz``, 401s, ``POST /-/reload``), and its whole log at
``--log.level=debug``, cut into the part each reload wrote and the rest. The run drives 500s,
malformed JSON, timeouts, 403s, 401s (injected, and a wrong SK's signature), an IAM 500 and
a wrong IAM password, broken files reloaded through POST and SIGHUP, and web configs
reloaded broken, then with a new password that the old one no longer opens.

A failure names the label and the sentinel (``SK as base64``), never its value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import yaml

from exporter import signing
from exporter.simulator import Fault, Simulator, default_specs
from tests.e2e.test_webconfig import bcrypt_hash
from tests.support.processes import ExporterProcess, run_cli, start_exporter
from tests.support.promtext import Samples, parse, series, value

pytestmark = pytest.mark.e2e

# ---------------------------------------------------------------------------- sentinels

AK = "AK"
SK = "SK"
TOKEN = "security token"
PASSWORD = "IAM password"
FILE_AK = "file AK"
WRONG_SK = "wrong SK"
WRONG_PASSWORD = "wrong IAM password"
NEW_SK = "new SK"
WEB_PASSWORD = "web password"
NEW_WEB_PASSWORD = "new web password"
NAMES = (AK, SK, TOKEN, PASSWORD, FILE_AK, WRONG_SK, WRONG_PASSWORD, NEW_SK)
WEB_NAMES = (WEB_PASSWORD, NEW_WEB_PASSWORD)
WEB_USER = "prometheus"
#: The simulator's IAM tokens ("MII" + 128 URL-safe characters) are credentials too.
IAM_TOKEN = re.compile(r"MII[A-Za-z0-9_-]{100,}")


def hmac_key(secret_key: str) -> bytes:
    """The key ``signing.sign`` gives HMAC-SHA256: the SK's own bytes, nothing derived."""
    return secret_key.encode()


def encodings(raw: bytes) -> dict[str, str]:
    """The obvious ways a value could be written out."""
    text = raw.decode()
    return {
        "": text,
        " as base64": base64.b64encode(raw).decode().rstrip("="),
        " as URL-safe base64": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        " URL-encoded": quote(text, safe=""),
        " form-encoded": quote_plus(text),
        " as hex": raw.hex(),
        " as upper-case hex": raw.hex().upper(),
    }


@dataclass(frozen=True)
class Sentinels:
    """One run's secrets, by name. Only the names are ever printed."""

    values: Mapping[str, str] = field(repr=False)

    @classmethod
    def fresh(cls) -> Sentinels:
        slug = {name: name.lower().replace(" ", "-") for name in (*NAMES, *WEB_NAMES)}
        return cls({n: f"sentinel-{s}+{secrets.token_hex(16)}" for n, s in slug.items()})

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def forms(self) -> dict[str, str]:
        """Description ("SK as hex") → text that must appear nowhere."""
        forms: dict[str, str] = {}
        for name, secret in self.values.items():
            forms |= {name + how: text for how, text in encodings(secret.encode()).items()}
        for name in (SK, WRONG_SK, NEW_SK):
            key = encodings(hmac_key(self[name]))
            forms |= {f"{name}'s HMAC key{how}": text for how, text in key.items()}
        for name in WEB_NAMES:
            basic = base64.b64encode(f"{WEB_USER}:{self[name]}".encode()).decode()
            forms[f"{name} in a Basic header"] = basic
        return forms

    def found_in(self, text: str) -> list[str]:
        """The names of what ``text`` gives away."""
        found = [name for name, form in self.forms().items() if form in text]
        return [*found, "an IAM token"] if IAM_TOKEN.search(text) else found

    def redact(self, text: str) -> str:
        """``text`` with every form replaced by its name, for assertions that may print it."""
        for name, form in sorted(self.forms().items(), key=lambda f: -len(f[1])):
            text = text.replace(form, f"<{name}>")
        return IAM_TOKEN.sub("<an IAM token>", text)


# ---------------------------------------------------------------------------- configs

PROJECT_TEMP = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"  # temporary AK/SK from the SDK variables
PROJECT_IAM = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"  # IAM password from an env variable
PROJECT_WRONG_SK = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"  # AK/SK files; the SK is wrong
PROJECT_WRONG_PASSWORD = "d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4"  # a literal, wrong password
PROJECTS = (PROJECT_TEMP, PROJECT_IAM, PROJECT_WRONG_SK, PROJECT_WRONG_PASSWORD)
DOMAIN = "hygiene-domain"
UNSET = "SENTINEL_UNSET_VARIABLE"
TIMEOUT = 0.5


def password_credentials(user: str, password: str) -> str:
    """A ``credentials`` section of ``type: password`` (YAML, at the target's indentation)."""
    return (
        f"credentials:\n  type: password\n  user: {user}\n  password: {password}\n"
        f"  domain: {DOMAIN}"
    )


@dataclass(frozen=True)
class BadConfig:
    """Credentials of the first target that make the file invalid, and the key named."""

    credentials: str
    key: str
    #: Why this case leaks, where it does (the xfail reason); keyed by capture kind.
    leaks: Mapping[str, str] = field(default_factory=dict)


CREDS = "targets[0].credentials"
BAD_CONFIGS = {
    "typo key next to a secret": BadConfig(
        "credentials:\n  access_key: <AK>\n  secret_kee: <SK>", f"{CREDS}.secret_kee"
    ),
    "secret glued to its key": BadConfig(
        "credentials: {access_key: <AK>, secret_key:<SK>}",
        f"{CREDS}.secret_key",
    ),
    "new secret glued to its key": BadConfig(
        "credentials: {access_key: <AK>, secret_key:<NEW_SK>}",
        f"{CREDS}.secret_key",
    ),
    "literal secret with a newline": BadConfig(
        'credentials:\n  access_key: <AK>\n  secret_key: "<NEW_SK>\\nsecond line"',
        f"{CREDS}.secret_key",
    ),
    "env variable missing": BadConfig(
        f"credentials:\n  access_key: <AK>\n  secret_key: {{env: {UNSET}}}", f"{CREDS}.secret_key"
    ),
    "${VAR} missing": BadConfig(
        f'credentials:\n  access_key: <AK>\n  secret_key: "${{{UNSET}}}"', f"{CREDS}.secret_key"
    ),
    "secret file missing": BadConfig(
        "credentials:\n  access_key: <AK>\n  secret_key: {file: <MISSING>}", f"{CREDS}.secret_key"
    ),
    "unclosed quote after a secret": BadConfig(
        'credentials:\n  access_key: <AK>\n  secret_key: "<NEW_SK>', ""
    ),
    "password credentials with an SK": BadConfig(
        password_credentials("monitoring", "<PASSWORD>") + "\n  secret_key: <SK>",
        f"{CREDS}.secret_key",
    ),
}
BAD_WEB_CONFIGS = {
    "password where its hash belongs": ("basic_auth_users:\n  prometheus: <NEW_WEB>\n", ""),
    "password glued to its user": ("basic_auth_users: {prometheus:<NEW_WEB>}\n", ""),
}


@dataclass(frozen=True)
class Files:
    directory: Path
    config: Path
    web: Path
    sentinels: Sentinels = field(repr=False)

    def config_text(self, endpoint: str, first_credentials: str = "") -> str:
        """The good config, or with ``first_credentials`` as the first target's section."""
        files = f"access_key: {{file: {self.directory / 'ak'}}}\n"
        files += f"secret_key: {{file: {self.directory / 'sk'}}}"
        targets = [
            (PROJECT_TEMP, f"resource_specs: {{job_types: [train]}}\n{first_credentials}"),
            (PROJECT_IAM, password_credentials("monitoring", "{env: MODELARTS_PASSWORD}")),
            (PROJECT_WRONG_SK, f"credentials:\n{textwrap.indent(files, '  ')}"),
            (PROJECT_WRONG_PASSWORD, password_credentials("intruder", "<WRONG_PASSWORD>")),
        ]
        text = f"""
poll_interval: 1s
stale_after: 3s
jitter: 0
timeout: {TIMEOUT}s
retry: {{max_attempts: 2, initial_backoff: 0.05s, max_backoff: 0.1s}}
targets:
"""
        for project, more in targets:
            target = f'project_id: "{project}"\nregion: cn-north-4\nendpoint: {endpoint}\n'
            target += f"iam_endpoint: {endpoint}\npools: [pool-a]\n{more}".rstrip()
            text += "  - " + textwrap.indent(target, "    ").removeprefix("    ") + "\n"
        placeholders = {"<AK>": AK, "<SK>": SK, "<NEW_SK>": NEW_SK, "<PASSWORD>": PASSWORD}
        for placeholder, name in {**placeholders, "<WRONG_PASSWORD>": WRONG_PASSWORD}.items():
            text = text.replace(placeholder, self.sentinels[name])
        return text.replace("<MISSING>", str(self.directory / "missing-sk"))

    def web_text(self, template: str) -> str:
        return template.replace("<NEW_WEB>", self.sentinels[NEW_WEB_PASSWORD])


def environment(s: Sentinels) -> dict[str, str]:
    env = {
        **os.environ,
        "HUAWEICLOUD_SDK_AK": s[AK],
        "HUAWEICLOUD_SDK_SK": s[SK],
        "HUAWEICLOUD_SDK_SECURITY_TOKEN": s[TOKEN],
        "MODELARTS_PASSWORD": s[PASSWORD],
    }
    env.pop(UNSET, None)
    return env


def simulator_for(s: Sentinels) -> Simulator:
    """Accepts the good sentinels; knows the file AK with another SK and the intruder with
    another password, so those are refused as a wrong SK and a wrong password are."""
    simulator = Simulator(
        access_keys={s[AK]: s[SK], s[FILE_AK]: "the-simulator-knows-another-sk"},
        security_tokens={s[AK]: s[TOKEN]},
        iam_users={
            (DOMAIN, "monitoring"): s[PASSWORD],
            (DOMAIN, "intruder"): "the-simulator-knows-another-password",
        },
    )
    for project in PROJECTS:
        simulator.set_pool(project, "pool-a", {"train": {"Running": 2, "Pending": 1}})
    simulator.set_specs(PROJECT_TEMP, "train", default_specs("train"))
    return simulator


# ---------------------------------------------------------------------------- capturing


def answer(response: httpx.Response) -> str:
    """Status, headers and body, as one text."""
    headers = "".join(f"{k}: {v}\n" for k, v in response.headers.items())
    return f"{response.status_code}\n{headers}\n{response.text}"


@dataclass(frozen=True)
class Outcome:
    """A finished CLI run; its repr (shown when a test fails) leaves the output out."""

    returncode: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)

    @classmethod
    def of(cls, result: subprocess.CompletedProcess[str]) -> Outcome:
        return cls(result.returncode, result.stdout, result.stderr)

    def text(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


@dataclass(frozen=True)
class Captured:
    """Every text kept, by label; its repr (shown when a test fails) names none of them."""

    texts: Mapping[str, str] = field(repr=False)

    def __getitem__(self, label: str) -> str:
        return self.texts[label]

    def labels(self) -> set[str]:
        return set(self.texts)


@dataclass
class Run:
    """The running exporter, and all it answered and logged, by label."""

    exporter: ExporterProcess
    simulator: Simulator
    files: Files
    password: str = field(repr=False)
    answers: dict[str, list[str]] = field(default_factory=dict, repr=False)
    slices: list[tuple[str, int, int]] = field(default_factory=list)
    reload_answers: dict[str, httpx.Response] = field(default_factory=dict)

    def get(
        self, path: str, label: str, password: str | None = "", **headers: str
    ) -> httpx.Response:
        """GET ``path`` with basic auth (the current password unless given; None: none)."""
        secret = self.password if password == "" else password
        auth = None if secret is None else httpx.BasicAuth(WEB_USER, secret)
        response = httpx.get(self.exporter.url + path, auth=auth, headers=headers, timeout=5)
        self.answers.setdefault(label, []).append(answer(response))
        return response

    def scrape(self) -> Samples:
        response = self.get("/metrics", "/metrics plain", **{"Accept-Encoding": "identity"})
        assert response.status_code == 200
        return parse(response.text)

    def until(self, check: Callable[[Samples], bool], what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not check(self.scrape()):
            if time.monotonic() > deadline:
                pytest.fail(f"not seen within {timeout}s: {what}")
            time.sleep(0.1)

    def post_reload(self, label: str) -> httpx.Response:
        auth = httpx.BasicAuth(WEB_USER, self.password)
        response = httpx.post(f"{self.exporter.url}/-/reload", auth=auth, timeout=15)
        self.answers.setdefault(label, []).append(answer(response))
        return response

    def log_text(self) -> str:
        return self.exporter.log_path.read_text()

    def mark(self) -> int:
        """Where the log's complete lines end now."""
        text = self.log_text()
        return text.rfind("\n") + 1

    def events(self, start: int, end: int | None = None) -> list[dict[str, Any]]:
        lines = self.log_text()[start:end].splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_event(self, start: int, event: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events(start) if e.get("event") == event]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                pytest.fail(f"no {event} logged within {timeout}s")
            time.sleep(0.05)

    @contextmanager
    def logged(self, label: str) -> Iterator[int]:
        """The log written inside the block is kept apart, under ``label``."""
        start = self.mark()
        yield start
        self.slices.append((label, start, self.mark()))

    def captured(self) -> dict[str, str]:
        """Every answer, each log slice, and the rest of the log (from start to exit)."""
        text = self.log_text()
        captured = {label: "\n".join(texts) for label, texts in self.answers.items()}
        rest, done = [], 0
        for label, start, end in self.slices:
            captured[f"log during {label}"] = text[start:end]
            rest.append(text[done:start])
            done = end
        captured["log, all the rest"] = "".join([*rest, text[done:]])
        return captured


def poll_errors(samples: Samples, project: str, code: str) -> float:
    """Failed polls of any API of ``project`` with ``code``."""
    found = series(samples, "modelarts_poll_errors_total", project_id=project, error_code=code)
    return sum(found.values())


def api_requests(samples: Samples, project: str, api: str, code: str) -> float:
    labels = {"project_id": project, "api": api, "code": code}
    return value(samples, "modelarts_api_requests_total", **labels) or 0.0


def scrape_every_endpoint(run: Run) -> None:
    """Each endpoint and encoding, authorized; and refused without or with a wrong password."""
    plain = {"Accept-Encoding": "identity"}
    gzipped = run.get("/metrics", "/metrics gzip", **{"Accept-Encoding": "gzip"})
    assert gzipped.headers["Content-Encoding"] == "gzip"
    openmetrics = "application/openmetrics-text; version=1.0.0"
    om = run.get("/metrics", "/metrics OpenMetrics", Accept=openmetrics, **plain)
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    run.scrape()
    for path in ("/", "/healthz", "/readyz"):
        assert run.get(path, path).status_code == 200
    assert run.get("/metrics", "401 answers", password=None).status_code == 401
    assert run.get("/metrics", "401 answers", password="not-the-password").status_code == 401


def drive_faults(run: Run) -> None:
    """One fault at a time until /metrics counts it: 500, malformed JSON, timeout and 403
    for the temporary-credentials project; 401 for it and the IAM one (whose token is then
    dropped), and an IAM 500 for the new token. Then every good project recovers."""

    def failed(project: str, code: str) -> Callable[[Samples], bool]:
        return lambda samples: poll_errors(samples, project, code) >= 1

    def up(project: str) -> Callable[[Samples], bool]:
        return lambda samples: value(samples, "modelarts_up", project_id=project) == 1.0

    def iam_failed(samples: Samples) -> bool:
        # Two: the retry failed too, so the poll failed and was logged.
        return api_requests(samples, PROJECT_IAM, "iam_tokens", "500") >= 2

    phases: list[tuple[Fault, list[Callable[[Samples], bool]]]] = [
        (Fault.server_error(500), [failed(PROJECT_TEMP, "ModelArts.50005000")]),
        (Fault.malformed_json(), [failed(PROJECT_TEMP, "invalid_json")]),
        (Fault.slow(2 * TIMEOUT), [failed(PROJECT_TEMP, "timeout")]),
        (Fault(status=403), [failed(PROJECT_TEMP, "APIGW.0302")]),
        (Fault.unauthorized(), [failed(p, "APIGW.0301") for p in (PROJECT_TEMP, PROJECT_IAM)]),
        (Fault.server_error(500, api="iam"), [iam_failed]),
    ]
    for fault, checks in phases:
        run.simulator.clear_faults()
        run.simulator.inject(fault)
        for check in checks:
            run.until(check, repr(fault), timeout=15)
    run.simulator.clear_faults()
    for project in (PROJECT_TEMP, PROJECT_IAM):
        run.until(up(project), f"{project} up", timeout=20)


def reload_bad_files(run: Run) -> None:
    """Each broken file through POST /-/reload, one through SIGHUP, then the good one."""
    good = run.files.config.read_text()
    for case, bad in BAD_CONFIGS.items():
        run.files.config.write_text(run.files.config_text(run.simulator.url, bad.credentials))
        with run.logged(f"reload {case}") as start:
            run.reload_answers[case] = run.post_reload(f"POST /-/reload {case}")
            run.wait_event(start, "config_reload_failed")
        if case == "typo key next to a secret":
            with run.logged(f"SIGHUP reload {case}") as start:
                run.exporter.process.send_signal(signal.SIGHUP)
                run.wait_event(start, "config_reload_failed")
    run.files.config.write_text(good)
    with run.logged("reload of the good file") as start:
        assert run.post_reload("POST /-/reload good").status_code == 200
        run.wait_event(start, "config_reloaded")


def reload_web_configs(run: Run) -> None:
    """Broken web configs keep the old password; a new one then locks the old one out."""
    for case, (template, _) in BAD_WEB_CONFIGS.items():
        run.files.web.write_text(run.files.web_text(template))
        with run.logged(f"web config reload {case}") as start:
            deadline = time.monotonic() + 10
            while not [e for e in run.events(start) if e["event"] == "web_config_reload_failed"]:
                assert run.get("/healthz", "/healthz").status_code == 200
                assert time.monotonic() < deadline, "no web_config_reload_failed"
                time.sleep(0.2)
    new = run.files.sentinels[NEW_WEB_PASSWORD]
    run.files.web.write_text(f"basic_auth_users:\n  {WEB_USER}: {bcrypt_hash(new)}\n")
    with run.logged("web config password change") as start:
        deadline = time.monotonic() + 10
        while run.get("/healthz", "/healthz", password=new).status_code != 200:
            assert time.monotonic() < deadline, "the new web password never applied"
            time.sleep(0.2)
        run.wait_event(start, "web_config_reloaded")
        old = run.get("/metrics", "401 answers after the password change")
        assert old.status_code == 401
    run.password = new


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sentinels() -> Sentinels:
    return Sentinels.fresh()


@pytest.fixture(scope="module")
def simulator(sentinels: Sentinels) -> Iterator[Simulator]:
    with simulator_for(sentinels) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def files(
    tmp_path_factory: pytest.TempPathFactory, sentinels: Sentinels, simulator: Simulator
) -> Files:
    directory = tmp_path_factory.mktemp("hygiene")
    (directory / "ak").write_text(sentinels[FILE_AK] + "\n")
    (directory / "sk").write_text(sentinels[WRONG_SK] + "\n")
    files = Files(directory, directory / "config.yaml", directory / "web.yml", sentinels)
    files.config.write_text(files.config_text(simulator.url))
    hashed = bcrypt_hash(sentinels[WEB_PASSWORD])
    files.web.write_text(f"basic_auth_users:\n  {WEB_USER}: {hashed}\n")
    return files


@pytest.fixture(scope="module")
def cli(files: Files, simulator: Simulator) -> dict[str, Outcome]:
    """check-config on the good file and each broken one; the exporter started with each
    broken web config."""
    env = environment(files.sentinels)

    def invoke(*args: str) -> Outcome:
        return Outcome.of(run_cli(*args, env=env))

    runs = {"check-config good": invoke("check-config", f"--config.file={files.config}")}
    for case, bad in BAD_CONFIGS.items():
        path = files.directory / "bad.yaml"
        path.write_text(files.config_text(simulator.url, bad.credentials))
        runs[f"check-config {case}"] = invoke("check-config", f"--config.file={path}")
    for case, (template, _) in BAD_WEB_CONFIGS.items():
        web = files.directory / "bad-web.yml"
        web.write_text(files.web_text(template))
        flags = (f"--config.file={files.config}", f"--web.config.file={web}")
        runs[f"start with web config {case}"] = invoke(*flags, "--web.listen-address=127.0.0.1:0")
    return runs


@pytest.fixture(scope="module")
def run(files: Files, simulator: Simulator) -> Iterator[Run]:
    """The exporter through every scenario, then stopped with SIGTERM."""
    flags = ("--log.level=debug", "--web.enable-lifecycle", f"--web.config.file={files.web}")
    env = environment(files.sentinels)
    exporter = start_exporter(files.config, files.directory / "exporter.log", env, *flags)
    try:
        run = Run(exporter, simulator, files, files.sentinels[WEB_PASSWORD])
        deadline = time.monotonic() + 15
        while run.get("/readyz", "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "exporter not ready"
            time.sleep(0.1)
        run.until(lambda s: poll_errors(s, PROJECT_WRONG_SK, "APIGW.0301") >= 1, "wrong SK")
        refused = "wrong IAM password"
        run.until(
            lambda s: api_requests(s, PROJECT_WRONG_PASSWORD, "iam_tokens", "401") >= 1, refused
        )
        scrape_every_endpoint(run)
        drive_faults(run)
        reload_bad_files(run)
        reload_web_configs(run)
        scrape_every_endpoint(run)
        exporter.process.send_signal(signal.SIGTERM)
        assert exporter.process.wait(timeout=10) == 0
        yield run
    finally:
        exporter.kill()


@pytest.fixture(scope="module")
def captured(cli: dict[str, Outcome], run: Run) -> Captured:
    return Captured({**{label: out.text() for label, out in cli.items()}, **run.captured()})


# ---------------------------------------------------------------------------- tests
# A failing assertion shows its operands: those that may hold a secret are redacted first.


def leak_cases() -> list[Any]:
    """Every capture label, an xfail where a leak is known (reason: where and how)."""

    def case(label: str, leak: str | None = None) -> Any:
        marks = [] if leak is None else [pytest.mark.xfail(strict=True, reason=leak)]
        return pytest.param(label, marks=marks, id=label)

    cases = [case("check-config good")]
    for name, bad in BAD_CONFIGS.items():
        cases.append(case(f"check-config {name}", bad.leaks.get("check-config")))
        cases.append(case(f"POST /-/reload {name}", bad.leaks.get("POST")))
        cases.append(case(f"log during reload {name}", bad.leaks.get("log")))
    cases.append(case("log during SIGHUP reload typo key next to a secret"))
    cases.append(case("POST /-/reload good"))
    cases.append(case("log during reload of the good file"))
    for name, (_, leak) in BAD_WEB_CONFIGS.items():
        cases.append(case(f"start with web config {name}", leak or None))
        cases.append(case(f"log during web config reload {name}", leak or None))
    cases.append(case("log during web config password change"))
    answers = ["/metrics plain", "/metrics gzip", "/metrics OpenMetrics", "/", "/healthz"]
    answers += ["/readyz", "401 answers", "401 answers after the password change"]
    cases += [case(label) for label in answers]
    cases.append(case("log, all the rest"))
    return cases


class TestNoSecretAnywhere:
    @pytest.mark.parametrize("label", leak_cases())
    def test_no_sentinel_in(self, captured: Captured, sentinels: Sentinels, label: str) -> None:
        """The capture holds no sentinel, raw or encoded, and no IAM token."""
        assert captured[label], f"{label}: nothing captured"
        found = sentinels.found_in(captured[label])
        assert not found, f"{label} gives away: {', '.join(found)}"

    def test_every_capture_is_checked(self, captured: Captured) -> None:
        """Nothing captured escapes the check above."""
        assert captured.labels() == {p.values[0] for p in leak_cases()}

    def test_the_check_finds_each_form(self, sentinels: Sentinels) -> None:
        """The check itself: every form of every sentinel, and an IAM token, is found."""
        for name, form in sentinels.forms().items():
            found = sentinels.found_in(f"x{form}x")
            assert name in found
        assert sentinels.found_in("X-Subject-Token: MII" + "a" * 128) == ["an IAM token"]

    def test_the_signing_key_is_the_secret_key_itself(self, sentinels: Sentinels) -> None:
        """SDK-HMAC-SHA256 keys HMAC with the SK's bytes, so its forms cover the key."""
        date, canonical = "20260101T000000Z", "GET\n/v1/\n\nhost:x\n\nhost\n"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"{signing.ALGORITHM}\n{date}\n{digest}".encode()
        ours = hmac.new(hmac_key(sentinels[SK]), to_sign, hashlib.sha256).hexdigest()
        theirs = signing.sign(sentinels[SK], date, canonical)
        assert ours == theirs


def count(run: Run, path: str, status: int, access_key: str | None = None) -> int:
    """Requests the simulator answered ``status`` whose path holds ``path``."""
    return sum(
        1
        for r in run.simulator.requests()
        if path in r.path and r.status == status and access_key in (None, r.access_key)
    )


class TestTheSecretsWereUsed:
    def test_the_simulator_accepted_the_good_ones(self, run: Run, sentinels: Sentinels) -> None:
        """Signed with the sentinel SK and token, and the IAM password, requests got 200."""
        assert count(run, PROJECT_TEMP, 200, sentinels[AK]) >= 1
        assert count(run, "/v3/auth/tokens", 201) >= 1
        assert count(run, PROJECT_IAM, 200) >= 1

    def test_the_wrong_ones_were_refused(self, run: Run, sentinels: Sentinels) -> None:
        """The file AK's wrong SK got 401 (signature), the intruder's password IAM 401."""
        assert count(run, PROJECT_WRONG_SK, 401, sentinels[FILE_AK]) >= 1
        assert count(run, "/v3/auth/tokens", 401) >= 1


class TestCheckConfig:
    def test_good_config_shows_where_each_secret_comes_from(
        self, cli: dict[str, Outcome], files: Files
    ) -> None:
        """Each secret is printed as its source: env variable, file or the config file."""
        result = cli["check-config good"]
        assert (result.returncode, result.stderr) == (0, "")
        printed = yaml.safe_load(files.sentinels.redact(result.stdout))
        creds = [target["credentials"] for target in printed["targets"]]
        assert creds[0] == {
            "type": "aksk",
            "access_key": "<secret from env HUAWEICLOUD_SDK_AK>",
            "secret_key": "<secret from env HUAWEICLOUD_SDK_SK>",
            "security_token": "<secret from env HUAWEICLOUD_SDK_SECURITY_TOKEN>",
        }
        assert creds[1]["type"] == "password"
        assert creds[1]["password"] == "<secret from env MODELARTS_PASSWORD>"
        assert creds[2] == {
            "type": "aksk",
            "access_key": f"<secret from file {files.directory / 'ak'}>",
            "secret_key": f"<secret from file {files.directory / 'sk'}>",
            "security_token": None,
        }
        assert creds[3]["password"] == "<secret from config file>"

    @pytest.mark.parametrize("case", BAD_CONFIGS)
    def test_bad_config_is_refused_naming_the_key(
        self, cli: dict[str, Outcome], sentinels: Sentinels, case: str
    ) -> None:
        """Exit 2, nothing on stdout, and stderr names the key at fault."""
        result = cli[f"check-config {case}"]
        assert (result.returncode, result.stdout) == (2, "")
        stderr = sentinels.redact(result.stderr)
        assert stderr.startswith("modelarts-exporter: invalid configuration: ")
        assert (BAD_CONFIGS[case].key or "is not valid YAML") in stderr

    @pytest.mark.parametrize("case", BAD_WEB_CONFIGS)
    def test_bad_web_config_stops_the_start(
        self, cli: dict[str, Outcome], sentinels: Sentinels, case: str
    ) -> None:
        """Exit 2 with an error naming basic_auth_users."""
        result = cli[f"start with web config {case}"]
        assert result.returncode == 2
        stderr = sentinels.redact(result.stderr)
        assert "invalid web configuration: basic_auth_users" in stderr


class TestReload:
    @pytest.mark.parametrize("case", BAD_CONFIGS)
    def test_bad_file_is_refused_naming_the_key(
        self, run: Run, sentinels: Sentinels, case: str
    ) -> None:
        """POST /-/reload answers 400 with the error, and config_reload_failed names the key."""
        response = run.reload_answers[case]
        assert response.status_code == 400
        body = sentinels.redact(response.text)
        assert body.startswith(f"failed to reload config: {BAD_CONFIGS[case].key}")
        _, start, end = next(s for s in run.slices if s[0] == f"reload {case}")
        lines = sentinels.redact(run.log_text()[start:end]).splitlines()
        events = [json.loads(line) for line in lines if line.startswith("{")]
        failed = [e for e in events if e["event"] == "config_reload_failed"]
        assert len(failed) == 1
        assert failed[0]["key"].startswith(BAD_CONFIGS[case].key)

    def test_sighup_reload_of_a_bad_file_names_the_key(self, run: Run) -> None:
        """A bad file reloaded by SIGHUP logs config_reload_failed with the key, too."""
        _, start, end = next(s for s in run.slices if s[0].startswith("SIGHUP"))
        failed = [e for e in run.events(start, end) if e["event"] == "config_reload_failed"]
        assert [e["key"] for e in failed] == [BAD_CONFIGS["typo key next to a secret"].key]

    def test_old_web_password_is_refused_after_the_change(self, captured: Captured) -> None:
        """Once the web config has a new password, the old one gets 401."""
        assert captured["401 answers after the password change"].startswith("401\n")
