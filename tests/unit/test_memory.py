"""exporter.memory: glibc's mmap threshold is fixed, unless the operator set it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from exporter.memory import MMAP_THRESHOLD, fix_mmap_threshold, glibc_mallopt
from tests.support.processes import ROOT

#: Allocates and frees big buffers of shrinking size, each followed by a small block that
#: stays (and pins the heap's top), then prints how much RSS grew in MB.
_PROBE = """
import sys
from pathlib import Path
from exporter.memory import fix_mmap_threshold
def rss():
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold(environ={})
pins = []
before = rss()
for size in range(24, 8, -1):
    big = b"x" * (size << 20)
    pins.append(b"y" * 1000)
    del big
print(rss() - before)
"""


def test_sets_glibcs_mmap_threshold() -> None:
    """mallopt(M_MMAP_THRESHOLD, 128 KiB), glibc's own starting value, made fixed."""
    calls: list[tuple[int, int]] = []

    def mallopt(param: int, value: int) -> int:
        calls.append((param, value))
        return 1

    assert fix_mmap_threshold(environ={}, find_mallopt=lambda: mallopt)
    assert calls == [(-3, MMAP_THRESHOLD)]


@pytest.mark.parametrize(
    "environ",
    [
        {"MALLOC_MMAP_THRESHOLD_": "1048576"},
        {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536"},
    ],
)
def test_the_operators_setting_wins(environ: dict[str, str]) -> None:
    """A threshold set in the environment, either way glibc reads one, is left alone."""

    def mallopt(param: int, value: int) -> int:
        raise AssertionError("mallopt must not be called")

    assert not fix_mmap_threshold(environ=environ, find_mallopt=lambda: mallopt)


def test_other_tunables_do_not_stop_it() -> None:
    """GLIBC_TUNABLES without the mmap threshold does not count as setting it."""
    environ = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    assert fix_mmap_threshold(environ=environ, find_mallopt=lambda: lambda p, v: 1)


def test_without_glibc_nothing_happens() -> None:
    """No mallopt (musl, macOS): nothing is set, and it says so."""
    assert not fix_mmap_threshold(environ={}, find_mallopt=lambda: None)


@pytest.mark.skipif(glibc_mallopt() is None, reason="glibc's allocator is what is measured")
def test_freed_big_buffers_leave_the_process_only_with_the_fixed_threshold() -> None:
    """The real glibc of this machine: without the fix the heap keeps tens of MB of freed
    buffers; with it, they go back to the system."""
    # glibc's own defaults: no malloc settings from the environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}

    def growth(mode: str) -> float:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE, mode],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return float(result.stdout)

    assert growth("default") > 10
    assert growth("fixed") < 2
