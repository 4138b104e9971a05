"""``exporter.config``: the YAML shape is a contract.

Good configurations live in ``tests/fixtures/config/*.ok.yaml``; bad ones in ``*.bad.yaml``,
each starting with ``# error: <text>``, a substring of the ``ConfigError`` it must raise.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from exporter import config
from exporter.config import AkSkCredentials, Config, Discovery, PasswordCredentials, Secret
from exporter.errors import ConfigError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "config"
BAD = sorted(FIXTURES.glob("*.bad.yaml"))
OK = sorted(FIXTURES.glob("*.ok.yaml"))

P1 = "0123456789abcdef0123456789abcdef"
P2 = "fedcba9876543210fedcba9876543210-abc"

SDK_AK = "AK-FROM-ENV-0001"
SDK_SK = "sk-from-env-secret-value"
SDK_TOKEN = "sdk-security-token-secret"
FIXTURE_AK = "AK-FIXTURE-0002"
FIXTURE_TOKEN = "token-fixture-secret-value"
IAM_PASSWORD = "iam-password-secret-value"
LITERAL_SK = "literal-secret-in-file"

ENV = {
    "HUAWEICLOUD_SDK_AK": SDK_AK,
    "HUAWEICLOUD_SDK_SK": SDK_SK,
    "FIXTURE_AK": FIXTURE_AK,
    "FIXTURE_TOKEN": FIXTURE_TOKEN,
    "IAM_PASSWORD": IAM_PASSWORD,
    "FIXTURE_PROJECT": P1,
    "FIXTURE_REGION": "cn-east-3",
    "FIXTURE_EMPTY": "",
}
SECRETS = (SDK_AK, SDK_SK, SDK_TOKEN, FIXTURE_AK, FIXTURE_TOKEN, IAM_PASSWORD, LITERAL_SK)

TARGET = f"""targets:
  - project_id: "{P1}"
    region: cn-north-4
    pools: [pool-a]
"""


def fixture(name: str, environ: dict[str, str] | None = None) -> Config:
    return config.load(FIXTURES / name, environ=ENV if environ is None else environ)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def with_credentials(tmp_path: Path, credentials: str) -> Path:
    """A one-target config whose ``credentials`` block is ``credentials`` (indented YAML)."""
    return write(tmp_path, TARGET + "    credentials:\n" + credentials)


def expected_error(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# error: "), f"{path.name} must start with '# error: '"
    return first.removeprefix("# error: ")


def aksk(cfg: Config, index: int = 0) -> AkSkCredentials:
    creds = cfg.targets[index].credentials
    assert isinstance(creds, AkSkCredentials)
    return creds


class TestFixtureFiles:
    def test_fixture_sets_are_present(self) -> None:
        """The fixture directory holds the good and bad configurations (so parametrizing runs)."""
        assert len(OK) >= 7
        assert len(BAD) >= 50

    @pytest.mark.parametrize("path", BAD, ids=[p.name.removesuffix(".bad.yaml") for p in BAD])
    def test_bad_config_raises_documented_error(self, path: Path) -> None:
        """Each bad file raises ConfigError containing the text of its '# error:' line."""
        expected = expected_error(path)
        with pytest.raises(ConfigError) as info:
            config.load(path, environ=ENV)
        assert expected in str(info.value)

    @pytest.mark.parametrize("path", OK, ids=[p.name.removesuffix(".ok.yaml") for p in OK])
    def test_good_config_loads(self, path: Path) -> None:
        """Each good file loads into a Config with at least one target and something to poll."""
        cfg = config.load(path, environ=ENV)
        assert cfg.targets
        assert all(t.pools or t.job_types or t.discovery is not None for t in cfg.targets)

    def test_error_message_starts_with_key_path(self) -> None:
        """A ConfigError's message starts with the key path, which is also its .path."""
        with pytest.raises(ConfigError) as info:
            fixture("project_id_too_short.bad.yaml")
        assert info.value.path == "targets[0].project_id"
        assert str(info.value) == "targets[0].project_id: must be 32-36 characters, got 7"


class TestContract:
    def test_contract_example_values(self) -> None:
        """The design card's example parses to exactly the values it spells out."""
        cfg = fixture("contract.ok.yaml")
        assert cfg.poll_interval == 60.0
        assert len(cfg.targets) == 1
        target = cfg.targets[0]
        assert target.project_id == P1
        assert target.region == "cn-north-4"
        assert target.endpoint == "https://modelarts.cn-north-4.myhuaweicloud.com"
        assert target.pools == ("pool-a", "pool-b")
        assert target.job_types == ("train", "inference")

    def test_contract_example_uses_sdk_environment_credentials(self) -> None:
        """Without a credentials block, the AK/SK come from the SDK's variables."""
        creds = aksk(fixture("contract.ok.yaml"))
        assert creds.access_key.reveal() == SDK_AK
        assert creds.secret_key.reveal() == SDK_SK
        assert creds.security_token is None


class TestDefaults:
    def test_minimal_defaults(self) -> None:
        """Unset keys take the documented defaults."""
        cfg = fixture("minimal.ok.yaml")
        assert cfg.poll_interval == 60.0
        assert cfg.stale_after == 180.0
        assert cfg.max_concurrency == 8
        assert cfg.timeout == 10.0
        assert 0 <= cfg.jitter < cfg.poll_interval
        assert cfg.targets[0].max_concurrency == 8
        assert cfg.targets[0].job_types == ()

    def test_endpoints_derived_from_region(self) -> None:
        """ModelArts and IAM endpoints are derived from the region when not given."""
        target = fixture("minimal.ok.yaml").targets[0]
        assert target.endpoint == "https://modelarts.cn-north-4.myhuaweicloud.com"
        assert target.iam_endpoint == "https://iam.cn-north-4.myhuaweicloud.com"

    def test_ap_southeast_1_uses_cn_domain(self) -> None:
        """The ap-southeast-1 ModelArts endpoint is on myhuaweicloud.cn."""
        cfg = fixture("multi_target.ok.yaml")
        assert cfg.targets[1].region == "ap-southeast-1"
        assert cfg.targets[1].project_id == P2
        assert cfg.targets[1].endpoint == "https://modelarts.ap-southeast-1.myhuaweicloud.cn"
        assert cfg.targets[0].endpoint == "https://modelarts.cn-north-4.myhuaweicloud.com"

    def test_stale_after_is_three_poll_intervals(self) -> None:
        """stale_after defaults to three times poll_interval."""
        assert fixture("multi_target.ok.yaml").stale_after == 90.0

    def test_default_jitter_below_short_interval(self, tmp_path: Path) -> None:
        """The default jitter stays below a sub-second poll_interval."""
        cfg = config.load(write(tmp_path, "poll_interval: 500ms\n" + TARGET), environ=ENV)
        assert cfg.poll_interval == pytest.approx(0.5)
        assert 0 <= cfg.jitter < 0.5

    def test_target_inherits_max_concurrency(self, tmp_path: Path) -> None:
        """A target without max_concurrency takes the top-level value."""
        cfg = config.load(write(tmp_path, "max_concurrency: 3\n" + TARGET), environ=ENV)
        assert cfg.targets[0].max_concurrency == 3

    def test_zero_jitter_allowed(self, tmp_path: Path) -> None:
        """jitter may be 0 (unlike the other durations)."""
        cfg = config.load(write(tmp_path, "jitter: 0\n" + TARGET), environ=ENV)
        assert cfg.jitter == 0.0


class TestFullConfig:
    def test_explicit_values(self) -> None:
        """Every explicitly set key is taken as written (durations converted to seconds)."""
        cfg = fixture("full.ok.yaml")
        assert cfg.poll_interval == 120.0
        assert cfg.stale_after == 600.0
        assert cfg.jitter == pytest.approx(0.5)
        assert cfg.timeout == 15.0
        assert cfg.max_concurrency == 4
        assert cfg.max_response_bytes == 1048576
        assert cfg.retry.max_attempts == 5
        assert cfg.retry.initial_backoff == pytest.approx(0.25)
        assert cfg.retry.max_backoff == 60.0

    def test_explicit_target_values(self) -> None:
        """Explicit endpoints (trailing slash dropped) and target concurrency are kept."""
        target = fixture("full.ok.yaml").targets[0]
        assert target.endpoint == "https://modelarts.example.internal:8443"
        assert target.iam_endpoint == "http://iam.example.internal"
        assert target.max_concurrency == 2
        assert target.pools == ("pool-a",)
        assert target.job_types == ("train", "inference")

    def test_explicit_credentials(self) -> None:
        """Env, literal and token secrets are read with their sources."""
        creds = aksk(fixture("full.ok.yaml"))
        assert (creds.access_key.reveal(), creds.access_key.source) == (
            FIXTURE_AK,
            "env FIXTURE_AK",
        )
        assert (creds.secret_key.reveal(), creds.secret_key.source) == (LITERAL_SK, "config file")
        assert creds.security_token is not None
        assert creds.security_token.reveal() == FIXTURE_TOKEN
        assert creds.security_token.source == "env FIXTURE_TOKEN"


class TestDurations:
    @pytest.mark.parametrize(
        ("raw", "seconds"),
        [
            ("30s", 30.0),
            ("5m", 300.0),
            ("1h", 3600.0),
            ("500ms", 0.5),
            ("1.5s", 1.5),
            ("60", 60.0),
            (60, 60.0),
            (0.25, 0.25),
            (" 2m ", 120.0),
        ],
    )
    def test_valid(self, raw: object, seconds: float) -> None:
        """Durations with ms/s/m/h units or plain seconds are converted to seconds."""
        assert config.parse_duration(raw, "poll_interval") == pytest.approx(seconds)

    @pytest.mark.parametrize(
        "raw", [0, "0", "0s", -1, -0.5, "-5s", "abc", "5d", "1 h", "", "s", True, None, [60]]
    )
    def test_invalid(self, raw: object) -> None:
        """Zero, negative, unit-less garbage and non-scalars are refused naming the key."""
        with pytest.raises(ConfigError, match=r"^poll_interval: "):
            config.parse_duration(raw, "poll_interval")

    def test_duration_in_file(self, tmp_path: Path) -> None:
        """A duration in the file is converted, here 500ms for the timeout."""
        cfg = config.load(write(tmp_path, "timeout: 500ms\n" + TARGET), environ=ENV)
        assert cfg.timeout == pytest.approx(0.5)


class TestCredentials:
    def test_default_from_sdk_environment(self) -> None:
        """Default AK/SK come from HUAWEICLOUD_SDK_AK/SK and name them as their source."""
        creds = aksk(fixture("minimal.ok.yaml"))
        assert (creds.access_key.reveal(), creds.access_key.source) == (
            SDK_AK,
            "env HUAWEICLOUD_SDK_AK",
        )
        assert (creds.secret_key.reveal(), creds.secret_key.source) == (
            SDK_SK,
            "env HUAWEICLOUD_SDK_SK",
        )
        assert creds.security_token is None

    def test_default_security_token_from_sdk_environment(self) -> None:
        """HUAWEICLOUD_SDK_SECURITY_TOKEN, when set, gives the default credentials a token."""
        environ = {**ENV, "HUAWEICLOUD_SDK_SECURITY_TOKEN": SDK_TOKEN}
        creds = aksk(fixture("minimal.ok.yaml", environ))
        assert creds.security_token is not None
        assert creds.security_token.reveal() == SDK_TOKEN
        assert creds.security_token.source == "env HUAWEICLOUD_SDK_SECURITY_TOKEN"

    def test_sdk_token_not_mixed_with_explicit_keys(self, tmp_path: Path) -> None:
        """The SDK token variable is not attached to explicitly configured keys."""
        path = with_credentials(tmp_path, "      access_key: {env: FIXTURE_AK}\n")
        environ = {**ENV, "HUAWEICLOUD_SDK_SECURITY_TOKEN": SDK_TOKEN}
        assert aksk(config.load(path, environ=environ)).security_token is None

    def test_missing_default_access_key(self) -> None:
        """Without HUAWEICLOUD_SDK_AK the error names targets[0].credentials.access_key."""
        environ = {"HUAWEICLOUD_SDK_SK": SDK_SK}
        with pytest.raises(ConfigError) as info:
            fixture("minimal.ok.yaml", environ)
        assert str(info.value) == (
            "targets[0].credentials.access_key: environment variable HUAWEICLOUD_SDK_AK is not set"
        )

    def test_missing_default_secret_key(self) -> None:
        """Without HUAWEICLOUD_SDK_SK the error names targets[0].credentials.secret_key."""
        with pytest.raises(ConfigError, match=r"^targets\[0\]\.credentials\.secret_key: "):
            fixture("minimal.ok.yaml", {"HUAWEICLOUD_SDK_AK": SDK_AK})

    def test_env_secret(self, tmp_path: Path) -> None:
        """{env: NAME} reads the variable and records 'env NAME' as the source."""
        path = with_credentials(tmp_path, "      secret_key: {env: IAM_PASSWORD}\n")
        secret = aksk(config.load(path, environ=ENV)).secret_key
        assert (secret.reveal(), secret.source) == (IAM_PASSWORD, "env IAM_PASSWORD")

    @pytest.mark.parametrize("ending", ["\n", "\r\n", "\n\n", ""])
    def test_file_secret_trailing_newline_stripped(self, tmp_path: Path, ending: str) -> None:
        """{file: PATH} reads the file without its trailing newline, source 'file PATH'."""
        secret_file = tmp_path / "sk"
        secret_file.write_bytes(b"file-secret-value" + ending.encode())
        path = with_credentials(tmp_path, f"      secret_key: {{file: {secret_file}}}\n")
        secret = aksk(config.load(path, environ=ENV)).secret_key
        assert secret.reveal() == "file-secret-value"
        assert secret.source == f"file {secret_file}"

    @pytest.mark.parametrize("content", [b"", b"\n", b"\r\n"])
    def test_empty_file_secret(self, tmp_path: Path, content: bytes) -> None:
        """An empty secret file is an error naming the key and the file."""
        secret_file = tmp_path / "sk"
        secret_file.write_bytes(content)
        path = with_credentials(tmp_path, f"      secret_key: {{file: {secret_file}}}\n")
        with pytest.raises(ConfigError) as info:
            config.load(path, environ=ENV)
        assert str(info.value) == f"targets[0].credentials.secret_key: {secret_file} is empty"

    def test_unreadable_file_secret(self, tmp_path: Path) -> None:
        """A secret 'file' that cannot be read (a directory) is an error naming the key."""
        path = with_credentials(tmp_path, f"      secret_key: {{file: {tmp_path}}}\n")
        with pytest.raises(ConfigError, match=r"^targets\[0\]\.credentials\.secret_key: cannot"):
            config.load(path, environ=ENV)

    def test_missing_file_secret(self, tmp_path: Path) -> None:
        """A secret file that does not exist is an error naming the key and the file."""
        missing = tmp_path / "nope"
        path = with_credentials(tmp_path, f"      secret_key: {{file: {missing}}}\n")
        with pytest.raises(ConfigError) as info:
            config.load(path, environ=ENV)
        assert str(info.value).startswith(
            f"targets[0].credentials.secret_key: cannot read {missing}"
        )

    def test_binary_file_secret(self, tmp_path: Path) -> None:
        """A secret file that is not UTF-8 text is a ConfigError, not a crash."""
        secret_file = tmp_path / "sk"
        secret_file.write_bytes(b"\xff\xfe\x00binary")
        path = with_credentials(tmp_path, f"      secret_key: {{file: {secret_file}}}\n")
        with pytest.raises(ConfigError, match=r"^targets\[0\]\.credentials\.secret_key: cannot"):
            config.load(path, environ=ENV)

    def test_literal_secret(self, tmp_path: Path) -> None:
        """A literal string is the secret itself, with 'config file' as its source."""
        path = with_credentials(tmp_path, f"      secret_key: {LITERAL_SK}\n")
        secret = aksk(config.load(path, environ=ENV)).secret_key
        assert (secret.reveal(), secret.source) == (LITERAL_SK, "config file")

    def test_password_credentials(self) -> None:
        """type: password gives user, password secret and domain."""
        creds = fixture("password.ok.yaml").targets[0].credentials
        assert isinstance(creds, PasswordCredentials)
        assert creds.user == "exporter"
        assert creds.domain == "my-account"
        assert (creds.password.reveal(), creds.password.source) == (
            IAM_PASSWORD,
            "env IAM_PASSWORD",
        )

    def test_password_from_file(self, tmp_path: Path) -> None:
        """A password may come from a file too."""
        secret_file = tmp_path / "password"
        secret_file.write_text("pw-from-file\n", encoding="utf-8")
        path = with_credentials(
            tmp_path,
            "      type: password\n      user: u\n      domain: d\n"
            f"      password: {{file: {secret_file}}}\n",
        )
        creds = config.load(path, environ=ENV).targets[0].credentials
        assert isinstance(creds, PasswordCredentials)
        assert creds.password.reveal() == "pw-from-file"


class TestExpansion:
    def test_variables_and_defaults(self) -> None:
        """${VAR} takes the variable, ${VAR:-default} the default when unset, $$ is a '$'."""
        cfg = fixture("env_expansion.ok.yaml")
        assert cfg.poll_interval == 45.0
        assert cfg.targets[0].project_id == P1
        assert cfg.targets[0].region == "cn-east-3"
        assert cfg.targets[0].pools == ("pool-default", "cost$centre")

    def test_set_variables_override_defaults(self) -> None:
        """${VAR:-default} takes the variable when it is set."""
        environ = {**ENV, "FIXTURE_INTERVAL": "90s", "FIXTURE_POOL": "pool-x"}
        cfg = fixture("env_expansion.ok.yaml", environ)
        assert cfg.poll_interval == 90.0
        assert cfg.targets[0].pools == ("pool-x", "cost$centre")

    def test_empty_variable_takes_default(self) -> None:
        """As in the shell, ${VAR:-default} takes the default when VAR is set but empty."""
        environ = {**ENV, "FIXTURE_INTERVAL": "", "FIXTURE_POOL": ""}
        cfg = fixture("env_expansion.ok.yaml", environ)
        assert cfg.poll_interval == 45.0
        assert cfg.targets[0].pools[0] == "pool-default"

    def test_escaped_reference_is_literal(self, tmp_path: Path) -> None:
        """$${VAR} is the literal text ${VAR}, even when VAR is undefined."""
        text = TARGET.replace("[pool-a]", '["$${NOT_DEFINED_ANYWHERE}"]')
        cfg = config.load(write(tmp_path, text), environ=ENV)
        assert cfg.targets[0].pools == ("${NOT_DEFINED_ANYWHERE}",)

    def test_dollars_in_literal_secret(self, tmp_path: Path) -> None:
        """A '$$' in a literal secret is one '$'; a lone '$' is kept."""
        path = with_credentials(tmp_path, '      secret_key: "pa$$w$rd"\n')
        assert aksk(config.load(path, environ=ENV)).secret_key.reveal() == "pa$w$rd"

    def test_undefined_variable_names_key_path(self) -> None:
        """An undefined ${VAR} without default names the key path and the variable."""
        with pytest.raises(ConfigError) as info:
            fixture("undefined_variable.bad.yaml")
        assert str(info.value) == (
            "targets[0].region: environment variable FIXTURE_UNDEFINED_REGION is not set"
        )


class TestLoadErrors:
    def test_missing_file(self, tmp_path: Path) -> None:
        """A config file that does not exist raises ConfigError naming it."""
        missing = tmp_path / "absent.yaml"
        with pytest.raises(ConfigError, match="cannot read config file") as info:
            config.load(missing, environ=ENV)
        assert str(missing) in str(info.value)

    def test_directory(self, tmp_path: Path) -> None:
        """A directory given as config file raises ConfigError."""
        with pytest.raises(ConfigError, match="cannot read config file"):
            config.load(tmp_path, environ=ENV)

    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty file is a config without the required targets."""
        with pytest.raises(ConfigError, match=r"^targets: is required$"):
            config.load(write(tmp_path, ""), environ=ENV)

    def test_not_yaml(self) -> None:
        """A file that is not YAML raises ConfigError saying so."""
        with pytest.raises(ConfigError, match="is not valid YAML"):
            fixture("not_yaml.bad.yaml")

    def test_not_utf8(self, tmp_path: Path) -> None:
        """A config file that is not UTF-8 raises ConfigError, not UnicodeDecodeError."""
        path = tmp_path / "config.yaml"
        path.write_bytes(TARGET.encode() + b"# \xff\xfe\n")
        with pytest.raises(ConfigError, match="cannot read config file"):
            config.load(path, environ=ENV)


def discovery(tmp_path: Path, block: str, top: str = "") -> Discovery | None:
    """The discovery of a one-target config (no pools) whose target ends with ``block``."""
    text = top + TARGET.replace("    pools: [pool-a]\n", block)
    return config.load(write(tmp_path, text), environ=ENV).targets[0].discovery


def rules(include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> Discovery:
    return Discovery(
        include=tuple(map(re.compile, include)), exclude=tuple(map(re.compile, exclude))
    )


class TestDiscovery:
    def test_fixture_values(self) -> None:
        """Every discovery key is read as written; workspace_id: 0 (a YAML int) becomes "0"."""
        first, second = fixture("discovery.ok.yaml").targets
        assert first.pools == ("pool-static",)
        assert first.discovery is not None
        assert first.discovery.workspace_id == "0"
        assert first.discovery.status == "created"
        assert first.discovery.label_selector == "os.modelarts/name=Prod A"
        assert [p.pattern for p in first.discovery.include] == ["gpu-.*", "Prod .*"]
        assert [p.pattern for p in first.discovery.exclude] == [".*-test"]
        assert first.discovery.refresh_interval == 600.0
        assert (second.pools, second.job_types) == ((), ())
        assert second.discovery == Discovery(refresh_interval=300.0)

    @pytest.mark.parametrize("block", ["    discovery:\n", "    discovery: {}\n"])
    def test_empty_discovery_turns_it_on_with_defaults(self, tmp_path: Path, block: str) -> None:
        """A bare ``discovery:`` (null) and ``discovery: {}`` both turn discovery on, with no
        filters and no rules, and are enough for a target to have something to poll."""
        assert discovery(tmp_path, block) == Discovery(
            workspace_id=None,
            status=None,
            label_selector=None,
            include=(),
            exclude=(),
            refresh_interval=300.0,
        )

    def test_absent_discovery_is_off(self) -> None:
        """A target without a ``discovery`` key has discovery None."""
        assert fixture("minimal.ok.yaml").targets[0].discovery is None

    @pytest.mark.parametrize(
        ("top", "refresh"),
        [
            pytest.param("", 300.0, id="default-60s"),
            pytest.param("poll_interval: 5m\n", 300.0, id="equal"),
            pytest.param("poll_interval: 10m\n", 600.0, id="longer-interval-wins"),
            pytest.param("poll_interval: 10s\n", 300.0, id="short-interval"),
        ],
    )
    def test_default_refresh_interval(self, tmp_path: Path, top: str, refresh: float) -> None:
        """refresh_interval defaults to the longer of 300 s and poll_interval."""
        found = discovery(tmp_path, "    discovery: {}\n", top)
        assert found is not None
        assert found.refresh_interval == refresh

    def test_refresh_interval_may_equal_poll_interval(self, tmp_path: Path) -> None:
        """A refresh_interval equal to poll_interval is allowed (ListPools every cycle)."""
        found = discovery(
            tmp_path, "    discovery: {refresh_interval: 1m}\n", "poll_interval: 60\n"
        )
        assert found is not None
        assert found.refresh_interval == 60.0

    @pytest.mark.parametrize(
        ("block", "expected"),
        [
            pytest.param("{workspace_id: 0}", ("0", None, None), id="zero"),
            pytest.param('{workspace_id: "0123"}', ("0123", None, None), id="quoted-digits"),
            pytest.param('{workspace_id: " ws-1 "}', ("ws-1", None, None), id="stripped"),
            pytest.param("{status: creating}", (None, "creating", None), id="status"),
            pytest.param("{label_selector: a=b}", (None, None, "a=b"), id="label-selector"),
        ],
    )
    def test_filters(
        self, tmp_path: Path, block: str, expected: tuple[str | None, str | None, str | None]
    ) -> None:
        """The ListPools filters are strings (YAML's number 0 is "0"); unset ones are None."""
        found = discovery(tmp_path, f"    discovery: {block}\n")
        assert found is not None
        assert (found.workspace_id, found.status, found.label_selector) == expected

    @pytest.mark.parametrize("status", ["Running", "Creating", "CREATED", "Error", "all"])
    def test_status_takes_the_documented_creation_states_only(
        self, tmp_path: Path, status: str
    ) -> None:
        """ListPools documents its status filter as created, creating or failed (pool
        creation states, not phases): anything else is refused, naming the key and the
        values it takes."""
        with pytest.raises(ConfigError) as raised:
            discovery(tmp_path, f"    discovery: {{status: {status}}}\n")
        assert str(raised.value) == (
            "targets[0].discovery.status: expected one of created, creating, failed"
            f" (pool creation states), got {status!r}"
        )

    @pytest.mark.parametrize("number", ["42", "0123", "0x1F", "1_000", "1.5"])
    def test_numbers_other_than_zero_are_refused(self, tmp_path: Path, number: str) -> None:
        """A workspace id YAML reads as a number other than 0 is refused with a hint to quote
        it, since YAML may have changed its value (0123 is octal 83)."""
        with pytest.raises(ConfigError, match=r"targets\[0\]\.discovery\.workspace_id: .*quote"):
            discovery(tmp_path, f"    discovery: {{workspace_id: {number}}}\n")

    @pytest.mark.parametrize(
        ("block", "message"),
        [
            pytest.param(
                '{include: [a, "[b"]}',
                "targets[0].discovery.include[1]: not a valid regular expression",
                id="include-regex",
            ),
            pytest.param(
                '{exclude: ["*"]}',
                "targets[0].discovery.exclude[0]: not a valid regular expression",
                id="exclude-regex",
            ),
            pytest.param(
                "{include: gpu-.*}",
                "targets[0].discovery.include: expected a list of strings",
                id="include-not-list",
            ),
            pytest.param(
                "{exclude: [a, a]}",
                "targets[0].discovery.exclude[1]: duplicate value 'a'",
                id="exclude-duplicate",
            ),
            pytest.param(
                "{workspace_id: true}",
                "targets[0].discovery.workspace_id: expected a non-empty string",
                id="workspace-bool",
            ),
            pytest.param(
                '{status: ""}',
                "targets[0].discovery.status: expected a non-empty string",
                id="status-empty",
            ),
            pytest.param(
                "{refresh_interval: 30s}",
                "targets[0].discovery.refresh_interval: must be at least poll_interval",
                id="refresh-below-interval",
            ),
            pytest.param(
                "{refresh_interval: 0}",
                "targets[0].discovery.refresh_interval: ",
                id="refresh-zero",
            ),
            pytest.param(
                "{labelSelector: a=b}",
                "targets[0].discovery.labelSelector: unknown key",
                id="unknown-key",
            ),
            pytest.param("true", "targets[0].discovery: expected a mapping", id="not-mapping"),
        ],
    )
    def test_invalid(self, tmp_path: Path, block: str, message: str) -> None:
        """A bad discovery value is a ConfigError that starts with its key path."""
        with pytest.raises(ConfigError) as info:
            discovery(tmp_path, f"    discovery: {block}\n")
        assert str(info.value).startswith(message)

    def test_unknown_key_reported_before_bad_values(self, tmp_path: Path) -> None:
        """A misspelt key is reported even when another discovery value is also bad."""
        with pytest.raises(ConfigError, match=r"^targets\[0\]\.discovery\.refresh: unknown key"):
            discovery(tmp_path, '    discovery: {include: ["("], refresh: 5m}\n')


class TestDiscoverySelects:
    @pytest.mark.parametrize(("name", "display_name"), [("pool-a", "Prod A"), ("x", ""), ("", "")])
    def test_no_rules_select_everything(self, name: str, display_name: str) -> None:
        """Without include or exclude patterns every pool is taken."""
        assert rules().selects(name, display_name)

    @pytest.mark.parametrize(
        ("name", "display_name", "taken"),
        [
            pytest.param("gpu-1", "Team", True, id="include-on-name"),
            pytest.param("pool-9", "Prod A", True, id="include-on-display-name"),
            pytest.param("pool-9", "Team", False, id="no-include-matches"),
            pytest.param("my-gpu-1", "Prod", False, id="include-anchored-start"),
            pytest.param("gpu", "Prod A/old", False, id="include-anchored-end"),
            pytest.param("gpu-test", "Prod A", False, id="exclude-on-name-wins"),
            pytest.param("gpu-1", "Old A", False, id="exclude-on-display-name-wins"),
            pytest.param("pool-9", "Old A", False, id="exclude-of-display-beats-include"),
            pytest.param("gpu-test-2", "Team", True, id="exclude-anchored"),
        ],
    )
    def test_include_then_exclude(self, name: str, display_name: str, taken: bool) -> None:
        """A pool is taken when an include pattern matches the whole name or display name
        and no exclude pattern matches either of them."""
        found = rules(include=("gpu-.*", "Prod A", "Old A"), exclude=(".*-test", "Old .*"))
        assert found.selects(name, display_name) is taken

    def test_exclude_without_include(self) -> None:
        """With only exclude patterns, every pool they do not match is taken."""
        found = rules(exclude=("tmp-.*",))
        assert found.selects("pool-a", "")
        assert not found.selects("tmp-1", "")
        assert not found.selects("pool-b", "tmp-b")

    def test_missing_display_name_is_not_matched(self) -> None:
        """A pool without a display name is matched on its name only, not on ""."""
        assert not rules(include=("gpu-.*|",)).selects("pool-a", "")
        assert rules(exclude=("gpu-.*|",)).selects("pool-a", "")

    def test_patterns_from_yaml(self, tmp_path: Path) -> None:
        """Patterns loaded from the file select exactly as compiled ones do."""
        found = discovery(tmp_path, '    discovery: {include: ["Prod .*"], exclude: [".*-b"]}\n')
        assert found is not None
        assert found.selects("pool-a", "Prod A")
        assert not found.selects("pool-b", "Prod B")
        assert not found.selects("pool-c", "")


def _all_secret_configs() -> list[Config]:
    environ = {**ENV, "HUAWEICLOUD_SDK_SECURITY_TOKEN": SDK_TOKEN}
    return [
        fixture("full.ok.yaml"),
        fixture("password.ok.yaml"),
        fixture("minimal.ok.yaml", environ),
    ]


class TestRedaction:
    def test_redacted_has_no_secret_values(self) -> None:
        """json.dumps(redacted(config)) contains none of the secret values."""
        for cfg in _all_secret_configs():
            dumped = json.dumps(config.redacted(cfg))
            for secret in SECRETS:
                assert secret not in dumped

    def test_redacted_shows_sources(self) -> None:
        """Each secret is replaced by a description of where it came from."""
        full, password, minimal = (json.dumps(config.redacted(c)) for c in _all_secret_configs())
        assert "env FIXTURE_AK" in full
        assert "config file" in full
        assert "env FIXTURE_TOKEN" in full
        assert "env IAM_PASSWORD" in password
        assert "env HUAWEICLOUD_SDK_AK" in minimal
        assert "env HUAWEICLOUD_SDK_SK" in minimal
        assert "env HUAWEICLOUD_SDK_SECURITY_TOKEN" in minimal

    def test_redacted_discovery_is_plain_yaml(self) -> None:
        """Discovery patterns show as their text, so check-config's YAML dump works and
        reads back as written."""
        plain = config.redacted(fixture("discovery.ok.yaml"))
        dumped = yaml.safe_load(yaml.safe_dump(plain, sort_keys=False))
        assert dumped == plain
        assert dumped["targets"][0]["discovery"] == {
            "workspace_id": "0",
            "status": "created",
            "label_selector": "os.modelarts/name=Prod A",
            "include": ["gpu-.*", "Prod .*"],
            "exclude": [".*-test"],
            "refresh_interval": 600.0,
        }
        assert dumped["targets"][1]["discovery"]["include"] == []
        assert "discovery" in dumped["targets"][1]

    def test_redacted_keeps_plain_values(self) -> None:
        """Non-secret values appear as configured."""
        plain = config.redacted(fixture("full.ok.yaml"))
        assert plain["poll_interval"] == 120.0
        assert plain["targets"][0]["project_id"] == P1
        assert plain["targets"][0]["pools"] == ["pool-a"]
        assert plain["targets"][0]["credentials"]["access_key"] == "<secret from env FIXTURE_AK>"


class TestSecretsNeverPrinted:
    def test_secret_repr_and_str(self) -> None:
        """repr() and str() of a Secret show its source, never its value."""
        secret = Secret("hunter2-value", "env SOME_VAR")
        for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}"):
            assert "hunter2-value" not in text
            assert "env SOME_VAR" in text

    def test_config_repr_and_str(self) -> None:
        """repr() and str() of a whole Config contain no secret value."""
        for cfg in _all_secret_configs():
            for text in (repr(cfg), str(cfg), repr(cfg.targets[0].credentials)):
                for secret in SECRETS:
                    assert secret not in text

    def test_secret_reveal(self) -> None:
        """reveal() returns the value (the only way to get it)."""
        assert Secret("hunter2-value", "env SOME_VAR").reveal() == "hunter2-value"


class TestFrozen:
    def test_config_is_frozen(self) -> None:
        """Assigning to a Config field raises."""
        cfg = fixture("contract.ok.yaml")
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.poll_interval = 1.0  # type: ignore[misc]

    def test_target_is_frozen(self) -> None:
        """Assigning to a Target field raises and its lists are tuples."""
        target = fixture("contract.ok.yaml").targets[0]
        with pytest.raises(dataclasses.FrozenInstanceError):
            target.pools = ("other",)  # type: ignore[misc]
        assert isinstance(target.pools, tuple)
        assert isinstance(fixture("contract.ok.yaml").targets, tuple)

    def test_credentials_and_secret_are_frozen(self) -> None:
        """Credentials and their secrets cannot be changed after loading."""
        creds = aksk(fixture("contract.ok.yaml"))
        with pytest.raises(dataclasses.FrozenInstanceError):
            creds.access_key = Secret("x", "y")  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            creds.secret_key.source = "elsewhere"  # type: ignore[misc]


class TestUnknownKeysFirst:
    def test_misspelt_credentials_key_is_reported_before_missing_variables(self) -> None:
        """With no SDK variables set, a misspelt 'credential:' still reports the typo."""
        data = {
            "targets": [
                {
                    "project_id": "0123456789abcdef0123456789abcdef",
                    "region": "cn-north-4",
                    "pools": ["pool-a"],
                    "credential": {"access_key": {"env": "MY_AK"}},
                }
            ]
        }
        with pytest.raises(ConfigError, match=r"^targets\[0\]\.credential: unknown key$"):
            config.parse(data, environ={})


class TestSecretsNeverEchoed:
    def test_yaml_syntax_error_names_the_place_not_the_line(self, tmp_path: Path) -> None:
        """A YAML error says where it is, but never quotes the line (it may hold a secret)."""
        path = tmp_path / "config.yaml"
        path.write_text("targets:\n  - credentials:\n      password: %Hunter2-Secret!\n")
        with pytest.raises(ConfigError) as caught:
            config.load(path, environ={})
        assert "Hunter2" not in str(caught.value)
        assert "line 3, column 17" in str(caught.value)

    def test_secret_with_inner_control_characters_is_refused(self) -> None:
        """A secret whose value has a control character inside is a ConfigError, not a
        header error that would quote it later; surrounding white space is dropped."""
        target = {
            "project_id": "0123456789abcdef0123456789abcdef",
            "region": "cn-north-4",
            "pools": ["p"],
        }
        with pytest.raises(ConfigError, match=r"access_key: the value from env HUAWEICLOUD_SDK_AK"):
            config.parse(
                {"targets": [target]},
                environ={"HUAWEICLOUD_SDK_AK": "AK\x00AK", "HUAWEICLOUD_SDK_SK": "sk"},
            )
        cfg = config.parse(
            {"targets": [target]},
            environ={"HUAWEICLOUD_SDK_AK": "AKAK\n", "HUAWEICLOUD_SDK_SK": " sk \n"},
        )
        creds = cfg.targets[0].credentials
        assert isinstance(creds, config.AkSkCredentials)
        assert (creds.access_key.reveal(), creds.secret_key.reveal()) == ("AKAK", "sk")
