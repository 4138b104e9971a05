"""The systemd unit and its example config in deploy/systemd/.

``systemd-analyze`` (Debian's ``systemd`` package, a hard requirement) verifies the unit and
scores its sandbox offline; no running systemd is needed. The unit's text is held to the
hardening it promises, directive by directive, and the example config to what
``check-config`` accepts with credentials in ``$CREDENTIALS_DIRECTORY``.

Last, the real exporter runs under an emulation of the unit's seccomp sandbox: its
``SystemCallFilter=`` (expanded by ``systemd-analyze syscall-filter``), systemd's
``MemoryDenyWriteExecute=`` rules and ``RestrictAddressFamilies=``, loaded through
libseccomp as systemd loads them, with ``NoNewPrivileges`` and no capabilities. Denied calls
kill the process there (the unit itself says EPERM), so any use of one shows. Not emulated:
the dynamic user's uid (this venv's Python may sit under a root-only /root), and the mount
and /proc namespaces (ProtectSystem=, ProtectHome=, PrivateTmp=, ProtectProc=, ...).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import pytest
import yaml

from exporter.cli import EXIT_CONFIG
from exporter.simulator import Simulator, default_specs
from tests.support.processes import run_cli
from tests.support.promtext import Samples, parse, series, value

ROOT = Path(__file__).resolve().parents[2]
UNIT_DIR = ROOT / "deploy" / "systemd"
UNIT = UNIT_DIR / "modelarts-exporter.service"
CONFIG = UNIT_DIR / "config.yaml"
README = UNIT_DIR / "README.md"

INSTALLED_EXPORTER = "/opt/modelarts-exporter/bin/modelarts-exporter"
EXEC_START = (
    f"{INSTALLED_EXPORTER} --config.file=/etc/modelarts-exporter/config.yaml --log.format=json"
)
CREDENTIAL_SOURCES = {
    "access_key": "/etc/modelarts-exporter/access_key",
    "secret_key": "/etc/modelarts-exporter/secret_key",
}
MAX_EXPOSURE = 2.5

#: [Service] directives and the exact list of values each must have (in order).
SERVICE: dict[str, list[str]] = {
    "Type": ["exec"],
    "ExecStart": [EXEC_START],
    "DynamicUser": ["yes"],
    "LoadCredential": [f"{cred}:{path}" for cred, path in CREDENTIAL_SOURCES.items()],
    "ProtectSystem": ["strict"],
    "ProtectHome": ["yes"],
    "PrivateTmp": ["yes"],
    "PrivateDevices": ["yes"],
    "NoNewPrivileges": ["yes"],
    "ProtectKernelTunables": ["yes"],
    "ProtectKernelModules": ["yes"],
    "ProtectKernelLogs": ["yes"],
    "ProtectControlGroups": ["yes"],
    "ProtectClock": ["yes"],
    "ProtectHostname": ["yes"],
    "ProtectProc": ["invisible"],
    "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
    "RestrictNamespaces": ["yes"],
    "RestrictRealtime": ["yes"],
    "RestrictSUIDSGID": ["yes"],
    "LockPersonality": ["yes"],
    "MemoryDenyWriteExecute": ["yes"],
    "SystemCallArchitectures": ["native"],
    "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    "SystemCallErrorNumber": ["EPERM"],
    "CapabilityBoundingSet": [""],
    "AmbientCapabilities": [""],
    "UMask": ["0077"],
    "MemoryMax": ["256M"],
    "Restart": ["on-failure"],
    "RestartSec": ["5s"],
    "RestartPreventExitStatus": [str(EXIT_CONFIG)],
    "TimeoutStopSec": ["15s"],
    "KillSignal": ["SIGTERM"],
}

#: Findings of ``systemd-analyze security`` the unit accepts, and why.
ACCEPTED_EXPOSURES = {
    "PrivateNetwork=": "it must reach ModelArts and serve /metrics",
    "RestrictAddressFamilies=~AF_(INET|INET6)": "the same",
    "IPAddressDeny=": "ModelArts endpoints differ by region; a firewall is the place",
    "RestrictAddressFamilies=~AF_UNIX": "journald and the resolver",
    "ProcSubset=": "prometheus_client needs /proc/stat for every process_* metric",
    "PrivateUsers=": "not asked for; untested here",
    "PrivateMounts=": "not asked for; untested here",
    "RootDirectory=/RootImage=": "the venv uses the host's Python",
    "DeviceAllow=": "char-rtc:r comes with ProtectClock=",
}

#: Always allowed by systemd with an allow-list SystemCallFilter= (systemd.exec(5)).
IMPLICIT_SYSCALLS = (
    *("execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"),
    *("clock_getres", "clock_gettime", "clock_gettime64", "clock_nanosleep"),
    *("clock_nanosleep_time64", "gettimeofday", "nanosleep", "time"),
)

SIM_PROJECT = "5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d5d"
SIM_AK = "SYSTEMDACCESSKEY0000"
SIM_SK = "systemd-sentinel-secret-key-0123456789"
SIM_POOLS = ("pool-a", "pool-b")


# --- helpers -----------------------------------------------------------------------------


def systemd_analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run systemd-analyze; fail (never skip) when it is not installed."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail(
            "systemd-analyze not found: the unit tests need Debian's systemd package "
            "(sudo apt-get install systemd)"
        )
    return subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections → directive → values in file order, like systemd reads a unit file."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"line {number}: keep each directive on one line"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, val = line.partition("=")
        assert sep, f"line {number}: not a directive: {raw!r}"
        assert current is not None, f"line {number}: directive outside a section"
        current.setdefault(key.strip(), []).append(val.strip())
    return sections


@cache
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def service() -> dict[str, list[str]]:
    return unit()["Service"]


def venv_exporter() -> Path:
    """The exporter's console script in the running venv (what /opt/... holds once installed)."""
    script = Path(sys.executable).with_name("modelarts-exporter")
    assert os.access(script, os.X_OK), f"{script} is missing: pip install -e . first"
    return script


def runnable_copy(directory: Path) -> Path:
    """The unit with ExecStart= pointing at an existing exporter, all else byte for byte."""
    text = UNIT.read_text(encoding="utf-8")
    old = f"\nExecStart={INSTALLED_EXPORTER} "
    assert text.count(old) == 1, f"no single ExecStart= running {INSTALLED_EXPORTER}"
    copy = directory / UNIT.name
    copy.write_text(text.replace(old, f"\nExecStart={venv_exporter()} "))
    return copy


def config_credential_ids() -> dict[str, str]:
    """Secret name → credential ID, for each ``{file: ${CREDENTIALS_DIRECTORY}/ID}``."""
    document = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    found = {}
    for name, source in document["targets"][0]["credentials"].items():
        match = re.fullmatch(r"\$\{CREDENTIALS_DIRECTORY\}/([^/]+)", source["file"])
        assert match, f"credentials.{name} does not read from $CREDENTIALS_DIRECTORY"
        found[name] = match[1]
    return found


def check_config(
    config: Path, credentials_directory: Path | None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUAWEICLOUD_SDK_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    if credentials_directory is not None:
        env["CREDENTIALS_DIRECTORY"] = str(credentials_directory)
    return run_cli("check-config", f"--config.file={config}", env=env)


# --- the seccomp sandbox -----------------------------------------------------------------

# libseccomp's ABI (seccomp.h).
LIBSECCOMP = "libseccomp.so.2"
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522


def scmp_act_errno(number: int) -> int:
    return 0x00050000 | (number & 0xFFFF)


class ScmpArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


@dataclass(frozen=True)
class Sandbox:
    """What the unit's seccomp settings allow, as plain data for the launcher's argv."""

    syscalls: list[str]
    families: list[int]

    def argv(self, command: Sequence[str]) -> list[str]:
        spec = json.dumps({"syscalls": self.syscalls, "families": self.families})
        launcher = (
            "import sys; from tests.deploy.test_systemd import exec_sandboxed; exec_sandboxed()"
        )
        return [sys.executable, "-c", launcher, spec, *command]


def syscall_groups() -> dict[str, list[str]]:
    """Every @group of ``systemd-analyze syscall-filter`` with its members."""
    result = systemd_analyze("syscall-filter")
    assert result.returncode == 0, result.stderr
    groups: dict[str, list[str]] = {}
    members: list[str] = []
    for line in result.stdout.splitlines():
        if line.startswith("@"):
            members = groups.setdefault(line.strip(), [])
        elif line.startswith(" ") and not line.strip().startswith("#") and line.strip():
            members.append(line.strip())
    assert "@system-service" in groups, result.stdout[:500]
    return groups


def expand(names: str, groups: dict[str, list[str]]) -> set[str]:
    found: set[str] = set()
    for name in names.split():
        found |= expand(" ".join(groups[name]), groups) if name.startswith("@") else {name}
    return found


@cache
def unit_sandbox() -> Sandbox:
    """The syscalls and address families the unit allows, systemd's way round."""
    try:
        ctypes.CDLL(LIBSECCOMP)
    except OSError:
        pytest.fail(f"{LIBSECCOMP} not found: Debian's libseccomp2 package (systemd needs it too)")
    groups = syscall_groups()
    filters = service()["SystemCallFilter"]
    assert not filters[0].startswith("~"), "the first SystemCallFilter= must be an allow-list"
    allowed = set(IMPLICIT_SYSCALLS)
    for entry in filters:
        if entry.startswith("~"):
            allowed -= expand(entry[1:], groups)
        else:
            allowed |= expand(entry, groups)
    families = [getattr(socket, name) for name in service()["RestrictAddressFamilies"][0].split()]
    return Sandbox(sorted(allowed), sorted(families))


def exec_sandboxed() -> None:
    """Run in a child: drop to a plain user, load the filters, exec argv[2:] (never returns)."""
    spec = json.loads(sys.argv[1])
    command = sys.argv[2:]
    if os.geteuid() == 0:
        drop_capabilities()
    lib = ctypes.CDLL(LIBSECCOMP, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(ScmpArgCmp),
    )
    lib.seccomp_load.argtypes = (ctypes.c_void_p,)

    def number(name: str) -> int:
        return int(lib.seccomp_syscall_resolve_name(name.encode()))

    def load(default: int, rules: list[tuple[int, str, list[tuple[int, int, int, int]]]]) -> None:
        ctx = lib.seccomp_init(default)
        assert ctx, "seccomp_init failed"
        for action, name, conditions in rules:
            nr = number(name)
            if nr < 0:  # not a system call of this architecture
                continue
            cmps = (ScmpArgCmp * max(1, len(conditions)))(*(ScmpArgCmp(*c) for c in conditions))
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(conditions), cmps)
            assert rc == 0, f"seccomp_rule_add({name}) = {rc}"
        rc = lib.seccomp_load(ctx)
        assert rc == 0, f"seccomp_load = {rc}"

    # MemoryDenyWriteExecute=: systemd's rules for x86-64/arm64, killing instead of EPERM.
    kill = SCMP_ACT_KILL_PROCESS
    load(
        SCMP_ACT_ALLOW,
        [
            (
                kill,
                "mmap",
                [(2, SCMP_CMP_MASKED_EQ, PROT_EXEC | PROT_WRITE, PROT_EXEC | PROT_WRITE)],
            ),
            (kill, "mprotect", [(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)]),
            (kill, "pkey_mprotect", [(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)]),
            (kill, "shmat", [(2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC)]),
        ],
    )
    # RestrictAddressFamilies=: socket() of any other family fails with EAFNOSUPPORT.
    refuse = scmp_act_errno(errno.EAFNOSUPPORT)
    top = max(spec["families"])
    others = [f for f in range(top) if f not in spec["families"]]
    load(
        SCMP_ACT_ALLOW,
        [(refuse, "socket", [(0, SCMP_CMP_EQ, f, 0)]) for f in others]
        + [(refuse, "socket", [(0, SCMP_CMP_GT, top, 0)])],
    )
    # SystemCallFilter=: an allow-list; anything else kills (the unit: EPERM). Loaded last, as
    # systemd does, since seccomp() itself is not on the list.
    load(SCMP_ACT_KILL_PROCESS, [(SCMP_ACT_ALLOW, name, []) for name in spec["syscalls"]])
    os.execv(command[0], command)


def drop_capabilities() -> None:
    """CapabilityBoundingSet= and AmbientCapabilities= empty: root keeps its uid, not its power."""
    libc = ctypes.CDLL(None, use_errno=True)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        assert libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0, f"PR_CAPBSET_DROP {cap}"
    assert libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    assert libc.capset(header, (ctypes.c_uint32 * 6)()) == 0, "capset"


def run_sandboxed(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        unit_sandbox().argv([sys.executable, "-c", code]),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- tests -------------------------------------------------------------------------------


class TestVerify:
    def test_systemd_analyze_verify_reports_nothing(self, tmp_path: Path) -> None:
        """systemd-analyze verify accepts the unit without a single warning."""
        result = systemd_analyze("verify", runnable_copy(tmp_path))
        assert result.returncode == 0, result.stderr
        assert result.stdout + result.stderr == ""

    def test_verify_would_report_a_misspelt_directive(self, tmp_path: Path) -> None:
        """The same verify run names an unknown directive, so its silence above means something."""
        copy = runnable_copy(tmp_path)
        copy.write_text(copy.read_text().replace("ProtectClock=yes", "ProtectClok=yes"))
        result = systemd_analyze("verify", copy)
        assert "Unknown key 'ProtectClok'" in result.stderr

    def test_the_verified_copy_differs_only_in_its_executable(self, tmp_path: Path) -> None:
        """The copy verify checks is the unit with nothing but ExecStart='s program changed."""
        original = UNIT.read_text().splitlines()
        copy = runnable_copy(tmp_path).read_text().splitlines()
        changed = [(a, b) for a, b in zip(original, copy, strict=True) if a != b]
        line = f"ExecStart={EXEC_START}"
        assert changed == [(line, line.replace(INSTALLED_EXPORTER, str(venv_exporter())))]


class TestDirectives:
    @pytest.mark.parametrize(("key", "expected"), SERVICE.items(), ids=list(SERVICE))
    def test_service_directive_has_its_value(self, key: str, expected: list[str]) -> None:
        """Each hardening and lifecycle directive is set once (lists: exactly), to its value."""
        assert service().get(key) == expected

    def test_no_other_directive_is_repeated(self) -> None:
        """No directive outside the list types is assigned twice, where the last would win."""
        repeated = {k for section in unit().values() for k, v in section.items() if len(v) > 1}
        assert repeated <= {"LoadCredential", "SystemCallFilter"}

    def test_exit_code_of_a_bad_config_is_the_one_not_restarted(self) -> None:
        """RestartPreventExitStatus= names the exit code the CLI uses for invalid config."""
        assert EXIT_CONFIG == 2
        assert service()["RestartPreventExitStatus"] == ["2"]

    def test_proc_subset_stays_unrestricted(self) -> None:
        """ProcSubset=pid would hide /proc/stat and with it every process_* metric."""
        assert "ProcSubset" not in service()

    def test_unit_is_enabled_for_boot_after_the_network(self) -> None:
        """systemctl enable hooks the unit into multi-user.target, after network-online."""
        assert unit()["Install"] == {"WantedBy": ["multi-user.target"]}
        assert unit()["Unit"]["After"] == ["network-online.target"]
        assert unit()["Unit"]["Wants"] == ["network-online.target"]

    def test_environment_file_alternative_is_shown_commented_out(self) -> None:
        """The HUAWEICLOUD_SDK_* alternative is in the unit, but not active."""
        lines = UNIT.read_text().splitlines()
        assert "#EnvironmentFile=-/etc/modelarts-exporter/env" in lines
        assert "EnvironmentFile" not in service()


class TestSecurity:
    def test_exposure_is_ok(self) -> None:
        """systemd-analyze security --offline scores the unit OK, at most 2.5."""
        result = systemd_analyze("security", "--offline=true", "--no-pager", UNIT)
        assert result.returncode == 0, result.stderr
        match = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", result.stdout)
        assert match, result.stdout
        assert float(match[1]) <= MAX_EXPOSURE, result.stdout
        assert match[2] in {"SAFE", "OK"}, result.stdout

    def test_every_remaining_exposure_is_an_accepted_one(self) -> None:
        """Each ✗ systemd-analyze security still finds is on the accepted list, with a reason."""
        result = systemd_analyze("security", "--offline=true", "--no-pager", UNIT)
        found = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("✗")}
        assert found, result.stdout
        assert found <= set(ACCEPTED_EXPOSURES), found - set(ACCEPTED_EXPOSURES)


class TestExampleConfig:
    def test_passes_check_config_with_files_in_the_credentials_directory(
        self, tmp_path: Path
    ) -> None:
        """check-config exits 0 and names each credential file, never its content."""
        (tmp_path / "access_key").write_text("AKSENTINEL0000000000\n")
        (tmp_path / "secret_key").write_text("sk-sentinel-0123456789\n")
        result = check_config(CONFIG, tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"access_key: <secret from file {tmp_path}/access_key>" in result.stdout
        assert f"secret_key: <secret from file {tmp_path}/secret_key>" in result.stdout
        assert "SENTINEL" not in (result.stdout + result.stderr).upper()

    def test_fails_outside_the_service_without_credentials_directory(self) -> None:
        """Without $CREDENTIALS_DIRECTORY check-config exits 2 and names the variable."""
        result = check_config(CONFIG, None)
        assert result.returncode == EXIT_CONFIG
        assert "CREDENTIALS_DIRECTORY is not set" in result.stderr

    def test_credential_ids_match_the_units_load_credential(self) -> None:
        """The config reads exactly the credentials the unit loads, under the same IDs."""
        ids = config_credential_ids()
        assert ids == {"access_key": "access_key", "secret_key": "secret_key"}
        loaded = dict(entry.split(":", 1) for entry in service()["LoadCredential"])
        assert set(ids.values()) == set(loaded)

    def test_credential_sources_sit_next_to_the_config_under_their_ids(self) -> None:
        """Each source is /etc/modelarts-exporter/<ID>: that directory serves a manual check."""
        config_dir = "/etc/modelarts-exporter"
        assert f"--config.file={config_dir}/config.yaml" in service()["ExecStart"][0]
        for entry in service()["LoadCredential"]:
            cred, path = entry.split(":", 1)
            assert path == f"{config_dir}/{cred}"
        assert "CREDENTIALS_DIRECTORY=/etc/modelarts-exporter" in README.read_text()


class TestSandbox:
    @pytest.mark.parametrize(
        ("code", "expected"),
        [
            ("import os; os.setpriority(os.PRIO_PROCESS, 0, 5)", -signal.SIGSYS),
            (
                "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE"
                " | mmap.PROT_EXEC)",
                -signal.SIGSYS,
            ),
            (
                "import socket\ntry: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)\n"
                "except OSError as e: raise SystemExit(e.errno)",
                errno.EAFNOSUPPORT,
            ),
            ("import socket; socket.socket(socket.AF_INET6).close()", 0),
            (
                "import re, sys; s = open('/proc/self/status').read()\n"
                "caps = re.findall(r'^Cap(?:Inh|Prm|Eff|Amb):\\s*(\\w+)$', s, re.M)\n"
                "sys.exit(0 if caps == ['0' * 16] * 4 and 'NoNewPrivs:\\t1' in s else 1)",
                0,
            ),
        ],
        ids=["resources-call", "write-exec-memory", "netlink-socket", "inet6-socket", "no-caps"],
    )
    def test_sandbox_enforces_the_units_rules(self, code: str, expected: int) -> None:
        """The emulated sandbox stops @resources calls, W+X memory, netlink and capabilities."""
        result = run_sandboxed(code)
        assert result.returncode == expected, result.stderr

    def test_exporter_polls_serves_and_stops_inside_the_sandbox(self, tmp_path: Path) -> None:
        """The exporter, run as the unit runs it, polls, serves and exits 0 on SIGTERM."""
        simulator = Simulator(access_keys={SIM_AK: SIM_SK})
        for pool in SIM_POOLS:
            simulator.set_pool(SIM_PROJECT, pool, {"train": {"Running": 2, "Queue": 1}})
        simulator.set_specs(SIM_PROJECT, "train", default_specs("train"))
        simulator.start()
        try:
            self.check_run(simulator, tmp_path)
        finally:
            simulator.stop()

    @staticmethod
    def check_run(simulator: Simulator, directory: Path) -> None:
        credentials = directory / "credentials"
        credentials.mkdir()
        (credentials / "access_key").write_text(SIM_AK + "\n")
        (credentials / "secret_key").write_text(SIM_SK + "\n")
        for path in credentials.iterdir():
            path.chmod(0o400)
        document = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
        target = document["targets"][0]
        target.update(
            project_id=SIM_PROJECT,
            endpoint=simulator.url,
            pools=list(SIM_POOLS),
            resource_specs={"job_types": ["train"]},
        )
        document.update(poll_interval="1s", jitter=0)
        config = directory / "config.yaml"
        config.write_text(yaml.safe_dump(document))

        program, *args = service()["ExecStart"][0].split()
        assert program == INSTALLED_EXPORTER
        args = [f"--config.file={config}" if a.startswith("--config.file=") else a for a in args]
        command = [str(venv_exporter()), *args, "--web.listen-address=127.0.0.1:0"]
        env = {"PATH": "/usr/bin:/bin", "HOME": "/", "CREDENTIALS_DIRECTORY": str(credentials)}
        log_path = directory / "journal.jsonl"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                unit_sandbox().argv(command), cwd=ROOT, env=env, stdout=log, stderr=log
            )
        try:
            url = f"http://127.0.0.1:{wait_for_port(process, log_path)}/metrics"
            samples = wait_for(url, lambda s: value(s, "modelarts_up", project_id=SIM_PROJECT) == 1)
            success = series(samples, "modelarts_poll_success", project_id=SIM_PROJECT)
            assert len(success) == len(SIM_POOLS) + 1
            assert set(success.values()) == {1.0}
            assert value(samples, "process_resident_memory_bytes") is not None
            process.send_signal(signal.SIGTERM)
            stop_timeout = float(service()["TimeoutStopSec"][0].removesuffix("s"))
            assert process.wait(timeout=stop_timeout) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        journal = log_path.read_text()
        events = [json.loads(line)["event"] for line in journal.splitlines()]
        assert events[0] == "exporter_started"
        assert events[-1] == "exporter_stopped"
        assert SIM_SK not in journal
        assert SIM_AK not in journal


def wait_for_port(process: subprocess.Popen[bytes], log_path: Path) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("event") == "exporter_started":
                return int(entry["port"])
        assert process.poll() is None, f"exit {process.returncode}: {log_path.read_text()}"
        time.sleep(0.05)
    pytest.fail(f"exporter did not start: {log_path.read_text()}")


def wait_for(url: str, check: Callable[[Samples], bool]) -> Samples:
    deadline = time.monotonic() + 20
    while True:
        samples = parse(httpx.get(url, timeout=5).text)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, "condition not met within 20 s"
        time.sleep(0.1)
