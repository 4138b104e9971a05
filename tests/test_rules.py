"""The Prometheus rules in deploy/prometheus/rules.yml.

promtool (Debian's real one, a hard requirement) checks the file and runs its unit tests in
deploy/prometheus/tests/. The rest holds every alert to the file's conventions: a severity
that routes, the three annotations, a runbook_url that lands on a section of
docs/runbook.md, a description that names what the alert is about, and unit tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
UNIT_TEST_DIR = ROOT / "deploy" / "prometheus" / "tests"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_PREFIX = "docs/runbook.md#"

SEVERITIES = {"critical", "warning", "info"}
ANNOTATIONS = ("summary", "description", "runbook_url")
#: Labels that say *what* an alert is about; a description must name each one it carries.
SUBJECT_LABELS = ("pool", "type", "flavor", "phase", "job_type", "spec_code", "target")

Rule = dict[str, Any]


# --- helpers -----------------------------------------------------------------------------


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool from the repository root; fail (never skip) when it is not installed."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool not found: the rule tests need Debian's prometheus package "
            "(scripts/ensure-tools installs it; or: sudo apt-get install prometheus)"
        )
    return subprocess.run(
        [exe, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@cache
def rules() -> tuple[Rule, ...]:
    """Every rule of every group in rules.yml."""
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return tuple(rule for group in document["groups"] for rule in group["rules"])


def alerts() -> list[Rule]:
    return [rule for rule in rules() if "alert" in rule]


def records() -> list[Rule]:
    return [rule for rule in rules() if "record" in rule]


def unit_test_files() -> list[Path]:
    return sorted(UNIT_TEST_DIR.glob("*.yml"))


@cache
def unit_tests() -> tuple[tuple[Path, dict[str, Any]], ...]:
    """Each unit-test file with its parsed content."""
    return tuple(
        (path, yaml.safe_load(path.read_text(encoding="utf-8"))) for path in unit_test_files()
    )


def alert_cases() -> list[dict[str, Any]]:
    """Every alert_rule_test case of every unit-test file."""
    return [
        case
        for _, document in unit_tests()
        for group in document.get("tests") or []
        for case in group.get("alert_rule_test") or []
    ]


def expr_cases() -> list[dict[str, Any]]:
    """Every promql_expr_test case of every unit-test file."""
    return [
        case
        for _, document in unit_tests()
        for group in document.get("tests") or []
        for case in group.get("promql_expr_test") or []
    ]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped,
    spaces turned into hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def markdown_headings(text: str) -> list[str]:
    """The ATX headings of a Markdown text, leaving out lines inside fenced code blocks."""
    headings: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        match = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if match and not fenced:
            headings.append(match.group(1))
    return headings


def runbook_anchors() -> set[str]:
    return {github_anchor(h) for h in markdown_headings(RUNBOOK.read_text(encoding="utf-8"))}


# --- promtool ----------------------------------------------------------------------------


class TestPromtool:
    def test_rules_file_passes_promtool_check(self) -> None:
        """`promtool check rules` accepts deploy/prometheus/rules.yml."""
        result = promtool("check", "rules", RULES)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_unit_tests_pass(self) -> None:
        """`promtool test rules` passes every unit-test file in deploy/prometheus/tests."""
        files = unit_test_files()
        assert files, f"no unit-test files in {UNIT_TEST_DIR}"
        result = promtool("test", "rules", *files)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_unit_test_files_load_the_shipped_rules(self) -> None:
        """Every unit-test file loads ../rules.yml and evaluates the rules every minute."""
        wrong = [
            path.name
            for path, document in unit_tests()
            if document.get("rule_files") != ["../rules.yml"]
            or document.get("evaluation_interval") != "1m"
        ]
        assert unit_tests(), f"no unit-test files in {UNIT_TEST_DIR}"
        assert not wrong, f"rule_files must be [../rules.yml], evaluation_interval 1m: {wrong}"

    def test_unit_test_files_evaluate_groups_in_file_order(self) -> None:
        """Every unit-test file sets group_eval_order to rules.yml's groups, recording first."""
        # Without it promtool evaluates groups in a random order, and alerts that read a
        # recording rule lag by one evaluation in about half the runs.
        document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
        groups = [group["name"] for group in document["groups"]]
        assert any("record" in rule for rule in document["groups"][0]["rules"]), (
            "the first group of rules.yml should hold the recording rules"
        )
        wrong = {
            path.name: document.get("group_eval_order")
            for path, document in unit_tests()
            if document.get("group_eval_order") != groups
        }
        assert not wrong, f"group_eval_order must be {groups}: {wrong}"


# --- alert conventions -------------------------------------------------------------------


class TestAlertConventions:
    def test_rule_names_are_unique(self) -> None:
        """No two alerts and no two recording rules share a name."""
        alert_names = [rule["alert"] for rule in alerts()]
        record_names = [rule["record"] for rule in records()]
        assert alert_names, "rules.yml has no alerts"
        assert records(), "rules.yml has no recording rules"
        assert len(set(alert_names)) == len(alert_names), alert_names
        assert len(set(record_names)) == len(record_names), record_names

    def test_every_alert_has_a_known_severity(self) -> None:
        """Every alert's labels.severity is critical, warning or info."""
        wrong = {
            rule["alert"]: (rule.get("labels") or {}).get("severity")
            for rule in alerts()
            if (rule.get("labels") or {}).get("severity") not in SEVERITIES
        }
        assert not wrong, f"severity must be one of {sorted(SEVERITIES)}: {wrong}"

    def test_every_alert_has_summary_description_and_runbook_url(self) -> None:
        """Every alert has non-empty summary, description and runbook_url annotations."""
        missing = {
            rule["alert"]: [
                key
                for key in ANNOTATIONS
                if not str((rule.get("annotations") or {}).get(key) or "").strip()
            ]
            for rule in alerts()
        }
        missing = {name: keys for name, keys in missing.items() if keys}
        assert not missing, f"missing annotations: {missing}"

    def test_every_description_names_its_subject(self) -> None:
        """A description names each pool, job type, spec or target label its alert carries."""
        # The labels an alert carries are read from its firing cases' exp_labels, which
        # promtool has checked to be exactly the labels the expression produces.
        carried: dict[str, set[str]] = {}
        for case in alert_cases():
            for expected in case.get("exp_alerts") or []:
                labels = set((expected.get("exp_labels") or {}).keys())
                carried.setdefault(case["alertname"], set()).update(labels)
        unnamed: dict[str, list[str]] = {}
        for rule in alerts():
            name = rule["alert"]
            description = (rule.get("annotations") or {}).get("description", "")
            subjects = [label for label in SUBJECT_LABELS if label in carried.get(name, set())]
            absent = [
                label for label in subjects if not re.search(rf"\$labels\.{label}\b", description)
            ]
            if absent:
                unnamed[name] = absent
        assert not unnamed, f"descriptions that do not name their labels: {unnamed}"


# --- runbook links -----------------------------------------------------------------------


class TestRunbookLinks:
    def test_runbook_urls_have_the_repository_form(self) -> None:
        """Every runbook_url is docs/runbook.md#<anchor> with a non-empty anchor."""
        wrong = {
            rule["alert"]: url
            for rule in alerts()
            if not re.fullmatch(
                re.escape(RUNBOOK_PREFIX) + r"[a-z0-9_-]+",
                url := str((rule.get("annotations") or {}).get("runbook_url", "")),
            )
        }
        assert not wrong, f"runbook_url must be {RUNBOOK_PREFIX}<anchor>: {wrong}"

    def test_every_runbook_url_lands_on_a_heading(self) -> None:
        """docs/runbook.md has a heading whose GitHub anchor is each runbook_url's anchor."""
        assert RUNBOOK.is_file(), f"{RUNBOOK} is missing"
        anchors = runbook_anchors()
        dangling = {
            rule["alert"]: url
            for rule in alerts()
            if (url := str((rule.get("annotations") or {}).get("runbook_url", ""))).removeprefix(
                RUNBOOK_PREFIX
            )
            not in anchors
        }
        assert not dangling, f"runbook_urls with no heading in docs/runbook.md: {dangling}"

    def test_every_alert_links_to_its_own_section(self) -> None:
        """Each alert's runbook_url anchor is the anchor of the heading named after it."""
        wrong = {
            rule["alert"]: url
            for rule in alerts()
            if (url := str((rule.get("annotations") or {}).get("runbook_url", "")))
            != RUNBOOK_PREFIX + github_anchor(rule["alert"])
        }
        assert not wrong, f"runbook_url is not the alert's own section: {wrong}"

    def test_runbook_has_no_section_for_a_missing_alert(self) -> None:
        """Every second-level ModelArts… heading in the runbook names an existing alert."""
        names = {rule["alert"] for rule in alerts()}
        text = RUNBOOK.read_text(encoding="utf-8")
        sections = [
            heading
            for heading in markdown_headings(text)
            if re.search(rf"^##\s+{re.escape(heading)}\s*$", text, re.MULTILINE)
            and heading.startswith("ModelArts")
        ]
        assert sections, "docs/runbook.md has no alert sections"
        stale = sorted(set(sections) - names)
        assert not stale, f"runbook sections for alerts that do not exist: {stale}"


class TestGithubAnchor:
    def test_anchor_drops_punctuation_and_hyphenates_spaces(self) -> None:
        """github_anchor lower-cases, drops punctuation and turns spaces into hyphens."""
        assert github_anchor("ModelArtsJobsAbnormal") == "modelartsjobsabnormal"
        assert github_anchor("How to silence or tune any alert") == (
            "how-to-silence-or-tune-any-alert"
        )
        assert github_anchor("Before you start: what the exporter tells you") == (
            "before-you-start-what-the-exporter-tells-you"
        )
        assert github_anchor("stale_after (3 x interval)") == "stale_after-3-x-interval"

    def test_headings_inside_code_fences_are_not_headings(self) -> None:
        """markdown_headings ignores `#` lines inside fenced code blocks."""
        text = "# Title\n\n```promql\n# a PromQL comment\nup\n```\n\n## Section ##\n"
        assert markdown_headings(text) == ["Title", "Section"]


# --- unit-test coverage ------------------------------------------------------------------


class TestUnitTestCoverage:
    def test_every_alert_is_unit_tested(self) -> None:
        """Every alert in rules.yml is the alertname of at least one alert_rule_test case."""
        tested = {case.get("alertname") for case in alert_cases()}
        untested = sorted(rule["alert"] for rule in alerts() if rule["alert"] not in tested)
        assert not untested, f"alerts without unit tests: {untested}"

    def test_every_tested_alert_exists(self) -> None:
        """Every alertname in the unit tests is an alert in rules.yml (none passes vacuously)."""
        names = {rule["alert"] for rule in alerts()}
        unknown = sorted({str(case.get("alertname")) for case in alert_cases()} - names)
        assert not unknown, f"unit tests for alerts that do not exist: {unknown}"

    def test_every_alert_has_firing_and_quiet_cases(self) -> None:
        """Every alert has a quiet case and a firing case with exp_labels and all annotations."""
        firing: set[str] = set()
        quiet: set[str] = set()
        incomplete: list[str] = []
        for case in alert_cases():
            name = str(case.get("alertname"))
            expected = case.get("exp_alerts") or []
            if not expected:
                quiet.add(name)
                continue
            firing.add(name)
            for alert in expected:
                annotations = alert.get("exp_annotations") or {}
                if not alert.get("exp_labels") or set(ANNOTATIONS) - set(annotations):
                    incomplete.append(f"{name} at {case.get('eval_time')}")
        names = {rule["alert"] for rule in alerts()}
        assert not sorted(names - firing), f"alerts never tested firing: {sorted(names - firing)}"
        assert not sorted(names - quiet), f"alerts never tested quiet: {sorted(names - quiet)}"
        assert not incomplete, f"firing cases without exp_labels or annotations: {incomplete}"

    def test_every_recording_rule_is_unit_tested(self) -> None:
        """Every recording rule is queried in the expr of at least one promql_expr_test case."""
        exprs = [str(case.get("expr", "")) for case in expr_cases()]
        untested = sorted(
            rule["record"]
            for rule in records()
            if not any(
                re.search(rf"(?<![\w:]){re.escape(rule['record'])}(?![\w:])", expr)
                for expr in exprs
            )
        )
        assert not untested, f"recording rules without promql_expr_test: {untested}"
