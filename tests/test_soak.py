"""The soak script (``bench/soak.py``): its log check, and a short run of it in CI.

The full soak (2000 cycles after the warm-up, figures in the README) takes about five
minutes; CI runs the same script for 300 cycles after a 200-cycle warm-up, which still
injects every kind of fault at least once (the warm-up goes through them in order).
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from exporter.simulator import Simulator
from tests.processes import ROOT

SCRIPT = ROOT / "bench" / "soak.py"


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_check_log_flags_non_json_lines_and_exceptions(tmp_path: Path) -> None:
    soak = load_soak()
    log = tmp_path / "exporter.log"
    entries = [
        {"event": "poll_failed", "level": "warning"},
        {"event": "config_reload_failed", "level": "error", "key": "poll_interval"},
        {"event": "publish_failed", "level": "error"},
        {"event": "reload_crashed", "level": "error", "exception": "Traceback ..."},
    ]
    lines = [json.dumps(entry) for entry in entries]
    log.write_text("\n".join([*lines, "Traceback (most recent call last):"]) + "\n")
    problems, levels = soak.check_log(log)
    assert [problem.split(" ")[1].rstrip(":") for problem in problems] == ["3", "4", "5"]
    assert levels == {"warning": 1, "error": 3}


def test_clean_log_passes(tmp_path: Path) -> None:
    soak = load_soak()
    log = tmp_path / "exporter.log"
    log.write_text(json.dumps({"event": "poll_failed", "level": "warning"}) + "\n")
    assert soak.check_log(log)[0] == []


@pytest.mark.e2e
def test_short_soak_passes_with_every_fault_injected() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--cycles", "300", "--warm-up", "200", "--seed", "7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.rstrip().endswith("PASS"), output
    injected = re.search(r"^faults injected: \d+ \((.*)\)$", output, re.MULTILINE)
    assert injected is not None, output
    kinds = {part.rsplit(" ", 1)[0] for part in injected.group(1).split(", ")}
    soak = load_soak()
    assert kinds == set(soak.Faults(Simulator(), random.Random()).kinds()), output
    counted = re.search(r"^failed polls the exporter counted: (\d+) \((.*)\)$", output, re.M)
    assert counted is not None, output
    codes = {part.rsplit(" ", 1)[0] for part in counted.group(2).split(", ")}
    # Among them: throttling, refusals, timeouts, bad bodies and a pool that is gone.
    expected = {"APIGW.0308", "APIGW.0301", "timeout", "invalid_json", "response_too_large"}
    assert expected | {"ModelArts.50015001"} <= codes, output
