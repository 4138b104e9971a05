"""Credentials that rotate: a target's secret files are read again when they change (the
Kubernetes way, a ``..data`` symlink swapped at once, included), a bad new file keeps the
previous credentials and says so, and no value is ever logged. Over real sockets: a rotated
Secret is used from the next cycle with no 401, and a broken one shows as
``modelarts_credentials_last_reload_successful 0`` while polling goes on."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.typing import FilteringBoundLogger

from exporter.config import AkSkCredentials, PasswordCredentials, Secret, read_secret_file
from exporter.credentials import RotatingCredentials, secret_files
from exporter.logs import make_logger
from exporter.simulator import Simulator
from tests.support.processes import ExporterProcess, start_exporter
from tests.support.promtext import Samples, value

OLD_AK, OLD_SK = "OLDACCESSKEY00000000", "old-secret-key-value"
NEW_AK, NEW_SK = "NEWACCESSKEY00000000", "new-secret-key-value"
PROJECT = "c0ffeec0ffeec0ffeec0ffeec0ffeec0"


class Secrets:
    """A mounted Kubernetes Secret: ``ak`` and ``sk`` are symlinks into ``..data``, a
    symlink to a timestamped directory that a rotation replaces at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0

    def write(self, **files: str) -> None:
        self.generation += 1
        version = self.root / f"..2026_12_07_{self.generation:04d}"
        version.mkdir()
        for name, content in files.items():
            (version / name).write_text(content + "\n")
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(Path("..data") / name)
        staged = self.root / "..data_tmp"
        staged.symlink_to(version.name)
        os.replace(staged, self.root / "..data")

    def path(self, name: str) -> str:
        return str(self.root / name)


@pytest.fixture
def secrets(tmp_path: Path) -> Secrets:
    mounted = Secrets(tmp_path)
    mounted.write(ak=OLD_AK, sk=OLD_SK)
    return mounted


def from_files(secrets: Secrets) -> AkSkCredentials:
    read = lambda p: Path(p).read_text(encoding="utf-8")  # noqa: E731
    return AkSkCredentials(
        read_secret_file(secrets.path("ak"), read), read_secret_file(secrets.path("sk"), read)
    )


def logger() -> tuple[io.StringIO, FilteringBoundLogger]:
    out = io.StringIO()
    return out, make_logger("debug", "json", stream=out)


def settled() -> float:
    """A clock a minute ahead: every file written now has settled."""
    return time.time() + 60


def events(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


class TestRotatingCredentials:
    def test_file_secrets_are_found(self, secrets: Secrets) -> None:
        """The secrets read from files are known by field, with their paths."""
        assert secret_files(from_files(secrets)) == {
            "access_key": secrets.path("ak"),
            "secret_key": secrets.path("sk"),
        }
        literal = AkSkCredentials(Secret("AK", "config file"), Secret("SK", "config file"))
        assert secret_files(literal) == {}

    def test_unchanged_files_are_not_read_again(self, secrets: Secrets) -> None:
        """While no file changes, ``current`` reads nothing and returns the same object."""
        reads: list[str] = []

        def read(path: str) -> str:
            reads.append(path)
            return Path(path).read_text(encoding="utf-8")

        _, log = logger()
        rotating = RotatingCredentials(from_files(secrets), log=log, read_file=read, clock=settled)
        first = rotating.current()
        assert rotating.current() is first
        assert reads == []
        assert rotating.rotating

    def test_a_swapped_secret_is_used_at_once(self, secrets: Secrets) -> None:
        """After the ``..data`` swap, the next ``current`` gives the new AK/SK, and one
        ``credentials_reloaded`` line names the files, not the values."""
        out, log = logger()
        rotating = RotatingCredentials(from_files(secrets), log=log, clock=settled)
        secrets.write(ak=NEW_AK, sk=NEW_SK)
        now = rotating.current()
        assert (now.access_key.reveal(), now.secret_key.reveal()) == (NEW_AK, NEW_SK)
        assert rotating.succeeded
        assert [e["event"] for e in events(out)] == ["credentials_reloaded"]
        assert NEW_SK not in out.getvalue()
        assert NEW_AK not in out.getvalue()

    def test_a_bad_new_file_keeps_the_previous_credentials(self, secrets: Secrets) -> None:
        """An empty new secret is refused: the previous AK/SK stay, ``succeeded`` is False,
        the failure is logged once (not at every request), and a good file later recovers."""
        out, log = logger()
        rotating = RotatingCredentials(from_files(secrets), log=log, clock=settled)
        secrets.write(ak=NEW_AK, sk="")
        for _ in range(3):
            kept = rotating.current()
            assert (kept.access_key.reveal(), kept.secret_key.reveal()) == (OLD_AK, OLD_SK)
        assert not rotating.succeeded
        (failure,) = events(out)
        assert failure["event"] == "credentials_reload_failed"
        assert "is empty" in str(failure["error"])
        assert NEW_AK not in out.getvalue()
        secrets.write(ak=NEW_AK, sk=NEW_SK)
        assert rotating.current().secret_key.reveal() == NEW_SK
        assert rotating.succeeded

    def test_a_change_is_used_once_the_files_settle(self, secrets: Secrets) -> None:
        """A file modified less than ``settle`` seconds ago is not read yet (its pair may
        still be on its way): the previous AK/SK stay until the files have settled."""
        now = [time.time()]
        _, log = logger()
        rotating = RotatingCredentials(
            from_files(secrets), log=log, clock=lambda: now[0], settle=1.0
        )
        secrets.write(ak=NEW_AK, sk=NEW_SK)
        assert rotating.current().access_key.reveal() == OLD_AK
        now[0] += 2.0
        assert rotating.current().access_key.reveal() == NEW_AK

    def test_a_refusal_reads_the_files_once_even_if_they_look_unchanged(
        self, secrets: Secrets
    ) -> None:
        """Files whose stat looks unchanged are read again after ``refused()``, once: the
        next ``current`` gives what they hold now, later ones read nothing, and the log
        says whether the files held other credentials."""
        reads: list[str] = []

        def read(path: str) -> str:
            reads.append(path)
            return Path(path).read_text(encoding="utf-8")

        out, log = logger()
        rotating = RotatingCredentials(
            from_files(secrets), log=log, read_file=read, identity=lambda path: None
        )
        rotating.refused()
        assert rotating.current().access_key.reveal() == OLD_AK
        assert len(reads) == 2
        (Path(secrets.path("ak"))).resolve().write_text(NEW_AK)
        (Path(secrets.path("sk"))).resolve().write_text(NEW_SK)
        assert rotating.current().access_key.reveal() == OLD_AK
        rotating.refused()
        rotating.refused()
        assert rotating.current().secret_key.reveal() == NEW_SK
        assert rotating.current().secret_key.reveal() == NEW_SK
        assert len(reads) == 4
        lines = [(e["event"], e["changed"]) for e in events(out)]
        assert lines == [
            ("credentials_reread_after_refusal", False),
            ("credentials_reread_after_refusal", True),
        ]
        assert NEW_SK not in out.getvalue()

    def test_a_password_file_rotates_too(self, tmp_path: Path) -> None:
        """An IAM password from a file is read again when the file changes."""
        secret = tmp_path / "password"
        secret.write_text("first-password")
        read = lambda p: Path(p).read_text(encoding="utf-8")  # noqa: E731
        creds = PasswordCredentials("user", read_secret_file(str(secret), read), "domain")
        _, log = logger()
        rotating = RotatingCredentials(creds, log=log, clock=settled)
        secret.write_text("second-password-longer")
        assert rotating.current().password.reveal() == "second-password-longer"

    def test_credentials_from_no_file_never_change(self) -> None:
        """Without file secrets nothing is stat'ed: ``current`` is the configured object."""
        literal = AkSkCredentials(Secret("AK", "config file"), Secret("SK", "config file"))

        def identity(path: str) -> None:
            raise AssertionError(f"stat'ed {path}")

        _, log = logger()
        rotating = RotatingCredentials(literal, log=log, identity=identity)
        assert rotating.current() is literal
        assert not rotating.rotating
        assert rotating.succeeded


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator(access_keys={OLD_AK: OLD_SK})
    sim.set_pool(PROJECT, "pool-a", {"train": {"Running": 3}})
    sim.start()
    yield sim
    sim.stop()


def wait(
    exporter: ExporterProcess, check: Callable[[Samples], bool], timeout: float = 15.0
) -> Samples:
    """Scrape until ``check`` holds; the samples it held for."""
    deadline = time.monotonic() + timeout
    while True:
        samples = exporter.scrape()
        if check(samples):
            return samples
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.1)


def exporter_with_files(simulator: Simulator, secrets: Secrets, tmp_path: Path) -> ExporterProcess:
    """The real exporter polling pool-a every 500 ms, its AK/SK from the mounted files."""
    config = tmp_path / "config.yaml"
    target = {
        "project_id": PROJECT,
        "region": "cn-north-4",
        "endpoint": simulator.url,
        "pools": ["pool-a"],
        "credentials": {
            "access_key": {"file": secrets.path("ak")},
            "secret_key": {"file": secrets.path("sk")},
        },
    }
    config.write_text(json.dumps({"poll_interval": "500ms", "jitter": 0, "targets": [target]}))
    return start_exporter(config, tmp_path / "exporter.log", {"PATH": os.environ["PATH"]})


def running(jobs: int) -> Callable[[Samples], bool]:
    """Whether pool-a has ``jobs`` running training jobs."""
    labels = {"project_id": PROJECT, "pool": "pool-a", "type": "train", "status": "running"}
    return lambda s: value(s, "modelarts_pool_jobs", **labels) == jobs


@pytest.mark.e2e
class TestRotationOverSockets:
    def test_a_rotated_secret_is_used_from_the_next_cycle_without_a_401(
        self, simulator: Simulator, secrets: Secrets, tmp_path: Path
    ) -> None:
        """The real exporter signs with the mounted Secret's AK/SK; ModelArts accepts a new
        key, the Secret is swapped, the old key is revoked: every request after the swap
        carries the new AK, none is refused, and the data keeps coming. A broken Secret
        then shows as modelarts_credentials_last_reload_successful 0 while the key in use
        keeps working."""
        exporter = exporter_with_files(simulator, secrets, tmp_path)
        try:
            wait(exporter, running(3))
            simulator.set_access_keys({OLD_AK: OLD_SK, NEW_AK: NEW_SK})
            secrets.write(ak=NEW_AK, sk=NEW_SK)
            swapped = time.time()
            # The files settle for a second, then the next request signs with the new key.
            time.sleep(2.5)
            simulator.set_access_keys({NEW_AK: NEW_SK})
            simulator.set_pool(PROJECT, "pool-a", {"train": {"Running": 5}})
            samples = wait(exporter, running(5))
            sent = simulator.requests()
            assert [r for r in sent if r.status in (401, 403)] == []
            after = [r for r in sent if r.time > swapped + 1.6]
            assert after
            assert {r.access_key for r in after} == {NEW_AK}
            assert value(samples, "modelarts_credentials_last_reload_successful") == 1.0

            secrets.write(ak=OLD_AK, sk="")
            broken = wait(
                exporter,
                lambda s: value(s, "modelarts_credentials_last_reload_successful") == 0.0,
            )
            assert value(broken, "modelarts_up", project_id=PROJECT) == 1.0
            simulator.set_pool(PROJECT, "pool-a", {"train": {"Running": 7}})
            wait(exporter, running(7))
            assert [r for r in simulator.requests() if r.status in (401, 403)] == []
            failures = [e for e in exporter.logs() if e["event"] == "credentials_reload_failed"]
            assert len(failures) == 1
            log = (tmp_path / "exporter.log").read_text()
            for secret in (OLD_SK, NEW_SK, NEW_AK):
                assert secret not in log
        finally:
            exporter.kill()

    def test_a_refusal_rereads_files_that_changed_without_a_trace(
        self, simulator: Simulator, secrets: Secrets, tmp_path: Path
    ) -> None:
        """The Secret's files are rewritten in place with keys of the same length and their
        modification time put back, so stat sees no change, and ModelArts revokes the old
        key: the one refused request makes the exporter read the files again, and the next
        cycle signs with the new key. One 401 in all, no retry of it."""
        exporter = exporter_with_files(simulator, secrets, tmp_path)
        try:
            wait(exporter, running(3))
            for name, content in (("ak", NEW_AK), ("sk", NEW_SK)):
                real = Path(secrets.path(name)).resolve()
                before = real.stat()
                real.write_text(content + "\n")
                os.utime(real, ns=(before.st_atime_ns, before.st_mtime_ns))
                assert real.stat().st_size == before.st_size
                assert real.stat().st_ino == before.st_ino
            simulator.set_access_keys({NEW_AK: NEW_SK})
            simulator.set_pool(PROJECT, "pool-a", {"train": {"Running": 4}})
            wait(exporter, running(4))
            sent = simulator.requests()
            refused = [r for r in sent if r.status == 401]
            assert len(refused) == 1
            assert refused[0].access_key == OLD_AK
            after = [r for r in sent if r.time > refused[0].time]
            assert after
            assert {(r.access_key, r.status) for r in after} == {(NEW_AK, 200)}
            rereads = [
                e for e in exporter.logs() if e["event"] == "credentials_reread_after_refusal"
            ]
            assert [e["changed"] for e in rereads] == [True]
        finally:
            exporter.kill()
