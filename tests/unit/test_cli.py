"""The command line, run as a real process: exit codes, check-config output, flags."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import bcrypt
import yaml

from exporter import __version__
from tests.support.processes import run_cli

AK = "CLISENTINELACCESSKEY"
SK = "cli-sentinel-secret-key-value"
TOKEN = "cli-sentinel-security-token-value"
PROJECT = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI with ``env`` added to this process's environment."""
    return run_cli(*args, env={**os.environ, **(env or {})})


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


GOOD = f"""
poll_interval: 30s
targets:
  - project_id: "{PROJECT}"
    region: cn-north-4
    pools: [pool-a]
    resource_specs:
      job_types: [train]
"""


class TestCheckConfig:
    def test_valid_config_prints_effective_config_with_secrets_masked(self, tmp_path: Path) -> None:
        """check-config exits 0 and prints the config with sources, never secret values."""
        path = write_config(tmp_path, GOOD)
        env = {
            "HUAWEICLOUD_SDK_AK": AK,
            "HUAWEICLOUD_SDK_SK": SK,
            "HUAWEICLOUD_SDK_SECURITY_TOKEN": TOKEN,
        }
        result = run("check-config", f"--config.file={path}", env=env)
        assert result.returncode == 0, result.stderr
        printed = yaml.safe_load(result.stdout)
        target = printed["targets"][0]
        assert target["endpoint"] == "https://modelarts.cn-north-4.myhuaweicloud.com"
        assert printed["stale_after"] == 90.0
        assert target["credentials"]["secret_key"] == "<secret from env HUAWEICLOUD_SDK_SK>"
        for secret in (AK, SK, TOKEN):
            assert secret not in result.stdout + result.stderr

    def test_bad_config_exits_2_naming_the_key(self, tmp_path: Path) -> None:
        """A bad value exits 2 with the key path and the problem on stderr."""
        path = write_config(tmp_path, GOOD.replace(PROJECT, "short"))
        result = run("check-config", f"--config.file={path}", env={"HUAWEICLOUD_SDK_AK": AK})
        assert result.returncode == 2
        assert "targets[0].project_id: must be 32-36 characters, got 5" in result.stderr
        assert result.stdout == ""

    def test_missing_credentials_exit_2_naming_the_variable(self, tmp_path: Path) -> None:
        """Without the SDK variables the error names the key and the variable."""
        path = write_config(tmp_path, GOOD)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUAWEICLOUD_")}
        result = subprocess.run(
            [sys.executable, "-m", "exporter", "check-config", f"--config.file={path}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        assert result.returncode == 2
        assert "targets[0].credentials.access_key" in result.stderr
        assert "HUAWEICLOUD_SDK_AK" in result.stderr

    def test_running_with_a_bad_config_also_exits_2(self, tmp_path: Path) -> None:
        """The exporter itself refuses to start on a bad config, with exit code 2."""
        path = write_config(tmp_path, GOOD + "    typo_key: 1\n")
        result = run(f"--config.file={path}")
        assert result.returncode == 2
        assert "targets[0].typo_key: unknown key" in result.stderr

    def test_web_config_is_checked_and_printed_without_hashes(self, tmp_path: Path) -> None:
        """With --web.config.file (after the command or before it) check-config also reads
        the web config and prints it as a second YAML document, user names without hashes."""
        path = write_config(tmp_path, GOOD)
        hashed = bcrypt.hashpw(b"scrape-password", bcrypt.gensalt(4)).decode()
        web = tmp_path / "web.yml"
        web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
        env = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
        for args in (
            ("check-config", f"--config.file={path}", f"--web.config.file={web}"),
            (f"--web.config.file={web}", "check-config", f"--config.file={path}"),
        ):
            result = run(*args, env=env)
            assert result.returncode == 0, result.stderr
            config, web_config = yaml.safe_load_all(result.stdout)
            assert config["targets"][0]["pools"] == ["pool-a"]
            assert web_config == {"basic_auth_users": {"prometheus": "<bcrypt hash>"}}
            assert hashed[7:] not in result.stdout + result.stderr

    def test_bad_web_config_exits_2_naming_the_key(self, tmp_path: Path) -> None:
        """A web config naming a certificate that is not there exits 2 with its key."""
        path = write_config(tmp_path, GOOD)
        web = tmp_path / "web.yml"
        web.write_text("tls_server_config:\n  cert_file: gone.crt\n  key_file: gone.key\n")
        env = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
        result = run("check-config", f"--config.file={path}", f"--web.config.file={web}", env=env)
        assert result.returncode == 2
        assert "invalid web configuration: tls_server_config.cert_file: cannot read" in (
            result.stderr
        )
        assert result.stdout == ""

    def test_missing_file_exits_2(self, tmp_path: Path) -> None:
        """A config file that does not exist exits 2 and names the file."""
        result = run("check-config", f"--config.file={tmp_path / 'nope.yaml'}")
        assert result.returncode == 2
        assert "nope.yaml" in result.stderr


class TestFlags:
    def test_version(self) -> None:
        """--version prints the version and exits 0."""
        result = run("--version")
        assert (result.returncode, result.stdout.strip()) == (
            0,
            f"modelarts-exporter {__version__}",
        )

    def test_unknown_flag_is_a_usage_error(self) -> None:
        """An unknown flag exits 2 with a usage message."""
        result = run("--web.listen-adress=:1")
        assert result.returncode == 2
        assert "unrecognized arguments" in result.stderr

    def test_taken_port_exits_1_with_a_log_line(self, tmp_path: Path) -> None:
        """If the listen address is in use the exporter logs listen_failed and exits 1."""
        path = write_config(tmp_path, GOOD)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = run(
                f"--config.file={path}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.format=json",
                env={"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK},
            )
        assert result.returncode == 1
        assert '"event": "listen_failed"' in result.stdout
        assert f"cannot listen on --web.listen-address=127.0.0.1:{port}: " in result.stdout
        assert SK not in result.stdout

    def test_malformed_listen_address_is_a_usage_error(self) -> None:
        """A listen address that is not [host]:port exits 2 naming the flag, before any
        config is read, for the exporter and the demo alike."""
        for args in (("--web.listen-address=10072",), ("demo", "--web.listen-address=:x")):
            result = run(*args)
            assert result.returncode == 2
            assert "argument --web.listen-address: expected [host]:port, got" in result.stderr
            assert "Traceback" not in result.stderr
