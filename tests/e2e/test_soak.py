"""The soak script (``bench/soak.py``): its verdicts, and a short run of it in CI.

The full soak (``make soak``: 2000 cycles after a 300-cycle warm-up, figures in
docs/performance.md, "Soak") takes a few minutes; CI runs the same script for 300 cycles after a
200-cycle warm-up, which still injects every kind of fault at least once (the warm-up goes
through them all, in order, before the baseline).
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from exporter.app import MAX_THREADS
from exporter.simulator import Simulator
from tests.support.processes import ROOT

SCRIPT = ROOT / "bench" / "soak.py"


@pytest.fixture(scope="module")
def soak() -> Iterator[ModuleType]:
    """bench/soak.py as a module, imported as the script runs: with bench/ on the path (for
    ``harness``), and registered while the tests use it (dataclasses need it)."""
    spec = importlib.util.spec_from_file_location("soak", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(SCRIPT.parent))
        del sys.modules["soak"]
        sys.modules.pop("harness", None)


def test_check_log_flags_crashes_tracebacks_and_non_json_lines(
    soak: ModuleType, tmp_path: Path
) -> None:
    """A crash event, an ``exception`` entry and a bare traceback line are problems; an
    expected warning and a refused reload are not. Entries are counted by level and event."""
    log = tmp_path / "exporter.log"
    entries = [
        {"event": "poll_failed", "level": "warning"},
        {"event": "config_reload_failed", "level": "error", "key": "poll_interval"},
        {"event": "publish_failed", "level": "error"},
        {"event": "reload_crashed", "level": "error", "exception": "Traceback ..."},
    ]
    lines = [json.dumps(entry) for entry in entries]
    log.write_text("\n".join([*lines, "Traceback (most recent call last):"]) + "\n")
    summary = soak.check_log(log)
    assert [problem.split(" ")[1].rstrip(":") for problem in summary.problems] == ["3", "4", "5"]
    assert summary.levels == {"warning": 1, "error": 3}
    assert summary.events["config_reload_failed"] == 1


def result(soak: ModuleType, after: tuple[float, int, int, float], **reloads: int) -> object:
    """A soak result with a 40 MB / 15 fds / 4 threads baseline and one good scrape."""
    scraper = SimpleNamespace(done=Counter(metrics=1), failures=[], slowest=0.001)
    run = SimpleNamespace(
        scraper=scraper, faults=SimpleNamespace(injected=Counter()), reloads=Counter(reloads)
    )
    log = soak.LogSummary(events=Counter(config_reloaded=reloads.get("valid", 0)))
    return soak.Result((40.0, 15, 4, 300.0), after, 45.0, 60.0, Counter(), 0, run, log)


@pytest.mark.parametrize(
    ("after", "reloads", "failure"),
    [
        ((44.9, 15, 4, 2300.0), {"valid": 2}, None),
        ((45.0, 15, 4, 2300.0), {}, "RSS grew 5.0 MB"),
        ((40.0, 16, 4, 2300.0), {}, "open fds grew 15 -> 16"),
        ((40.0, 15, MAX_THREADS + 1, 2300.0), {}, f"threads 4 -> {MAX_THREADS + 1}"),
        ((40.0, 15, 4, 2300.0), {"valid": 1, "invalid": 1}, "every invalid one refused"),
    ],
)
def test_report_fails_on_each_limit(
    soak: ModuleType,
    after: tuple[float, int, int, float],
    reloads: dict[str, int],
    failure: str | None,
) -> None:
    """Each limit on its own makes the soak fail, naming it; within them it passes."""
    problems = soak.report(result(soak, after, **reloads))
    if failure is None:
        assert problems == []
    else:
        assert len(problems) == 1
        assert failure in problems[0]


@pytest.mark.e2e
def test_short_soak_passes_with_every_fault_injected(soak: ModuleType) -> None:
    """bench/soak.py --cycles 300 --warm-up 200 passes, after injecting every kind of fault,
    and the exporter counted failed polls of the kinds injected."""
    ran = subprocess.run(
        [sys.executable, str(SCRIPT), "--cycles", "300", "--warm-up", "200", "--seed", "7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output
    assert ran.stdout.rstrip().endswith("PASS"), output
    assert ran.stderr == "", output
    injected = re.search(r"^faults injected: \d+ \((.*)\)$", output, re.MULTILINE)
    assert injected is not None, output
    kinds = {part.rsplit(" ", 1)[0] for part in injected.group(1).split(", ")}
    assert kinds == set(soak.Faults(Simulator(), random.Random()).kinds()), output
    counted = re.search(r"^failed polls the exporter counted: (\d+) \((.*)\)$", output, re.M)
    assert counted is not None, output
    codes = {part.rsplit(" ", 1)[0] for part in counted.group(2).split(", ")}
    # Among them: throttling, refusals, timeouts, bad bodies and a pool that is gone.
    expected = {"APIGW.0308", "APIGW.0301", "timeout", "invalid_json", "response_too_large"}
    assert expected | {"ModelArts.50015001"} <= codes, output
