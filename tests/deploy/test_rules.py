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

from tests.support.markdown import github_anchor, markdown_headings
from tests.support.processes import run_python

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
UNIT_TEST_DIR = ROOT / "deploy" / "prometheus" / "tests"
RUNBOOK = ROOT / "docs" / "runbook.md"
SETTINGS = ROOT / "deploy" / "prometheus" / "settings.yml"

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


def settings_runbook_url() -> str:
    """The runbook address the rules were generated with (deploy/prometheus/settings.yml)."""
    url = yaml.safe_load(SETTINGS.read_text(encoding="utf-8"))["runbook_url"]
    assert isinstance(url, str)
    return url


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
    def test_runbook_urls_are_the_settings_address_and_an_anchor(self) -> None:
        """Every runbook_url is settings.yml's runbook_url (an absolute, clickable address),
        '#' and a non-empty anchor."""
        base = settings_runbook_url()
        assert re.fullmatch(r"https?://\S+", base), base
        wrong = {
            rule["alert"]: url
            for rule in alerts()
            if not re.fullmatch(
                re.escape(base + "#") + r"[a-z0-9_-]+",
                url := str((rule.get("annotations") or {}).get("runbook_url", "")),
            )
        }
        assert not wrong, f"runbook_url must be {base}#<anchor>: {wrong}"

    def test_every_runbook_url_lands_on_a_heading(self) -> None:
        """docs/runbook.md has a heading whose GitHub anchor is each runbook_url's anchor."""
        assert RUNBOOK.is_file(), f"{RUNBOOK} is missing"
        anchors = runbook_anchors()
        dangling = {
            rule["alert"]: url
            for rule in alerts()
            if (url := str((rule.get("annotations") or {}).get("runbook_url", ""))).partition("#")[
                2
            ]
            not in anchors
        }
        assert not dangling, f"runbook_urls with no heading in docs/runbook.md: {dangling}"

    def test_every_alert_links_to_its_own_section(self) -> None:
        """Each alert's runbook_url anchor is the anchor of the heading named after it."""
        wrong = {
            rule["alert"]: url
            for rule in alerts()
            if (url := str((rule.get("annotations") or {}).get("runbook_url", "")))
            != f"{settings_runbook_url()}#{github_anchor(rule['alert'])}"
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


# --- the rules follow the settings --------------------------------------------------------


def copy_of_the_mixin(tmp_path: Path) -> Path:
    """deploy/ copied to ``tmp_path``, so that the mixin can rewrite its outputs there."""
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    return tmp_path / "deploy" / "prometheus"


class TestSettings:
    OTHER = ROOT / "tests" / "fixtures" / "alerting-settings-other.yml"

    def test_changing_every_knob_and_running_one_command_keeps_everything_consistent(
        self, tmp_path: Path
    ) -> None:
        """With every knob of settings.yml changed, one `mixin.py` run rewrites the rules,
        the PrometheusRule and the promtool tests so that promtool passes them all and
        `--check` is satisfied; the new values are in the rules."""
        mixin_dir = copy_of_the_mixin(tmp_path)
        shutil.copy(self.OTHER, mixin_dir / "settings.yml")
        script = mixin_dir / "mixin.py"
        assert run_python(script, "--check").returncode == 1
        written = run_python(script)
        assert written.returncode == 0, written.stderr
        assert "prometheusrule.yaml" in written.stdout
        assert run_python(script, "--check").returncode == 0
        rules_text = (mixin_dir / "rules.yml").read_text(encoding="utf-8")
        for value in ("for: 20m", "[45m]", "[30m:1m]", "for: 1h", "wiki.example.com"):
            assert value in rules_text, value
        checked = promtool("check", "rules", mixin_dir / "rules.yml")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        tested = promtool("test", "rules", *sorted((mixin_dir / "tests").glob("*.yml")))
        assert tested.returncode == 0, tested.stdout + tested.stderr
        operator = yaml.safe_load(
            (tmp_path / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml").read_text()
        )
        assert operator["spec"]["groups"] == yaml.safe_load(rules_text)["groups"]

    def test_committed_outputs_are_up_to_date(self) -> None:
        """`mixin.py --check` finds the committed rules, tests and Operator resources current."""
        result = run_python(ROOT / "deploy" / "prometheus" / "mixin.py", "--check")
        assert result.returncode == 0, result.stderr

    def test_a_stale_output_is_found_and_rewritten(self, tmp_path: Path) -> None:
        """A generated file edited by hand fails --check, naming it; a run restores it."""
        mixin_dir = copy_of_the_mixin(tmp_path)
        rules_file = mixin_dir / "rules.yml"
        original = rules_file.read_text(encoding="utf-8")
        rules_file.write_text(original.replace("for: 15m", "for: 16m", 1), encoding="utf-8")
        stale = run_python(mixin_dir / "mixin.py", "--check")
        assert stale.returncode == 1
        assert "deploy/prometheus/rules.yml is stale" in stale.stderr
        assert run_python(mixin_dir / "mixin.py").returncode == 0
        assert rules_file.read_text(encoding="utf-8") == original


# --- the refusal replay is the exporter's own schedule ------------------------------------

#: The project of exporter_test.yml's group that replays the refusal backoff.
REPLAY_PROJECT = "0b5e55ed0b5e55ed0b5e55ed0b5e55ed"


def expand(values: str) -> list[float | None]:
    """promtool's expanding notation ('1 2x3 0+2x2 _ stale') as one value per step
    (None for '_' and 'stale')."""
    out: list[float | None] = []
    for term in values.split():
        if term in ("_", "stale"):
            out.append(None)
            continue
        match = re.fullmatch(r"(-?[\d.]+)(?:([+-][\d.]+)?x(\d+))?", term)
        assert match, f"unsupported term {term!r}"
        start, step, times = match.groups()
        if times is None:
            out.append(float(start))
            continue
        delta = float(step or 0)
        out.extend(float(start) + delta * i for i in range(int(times) + 1))
    return out


class TestRefusalReplay:
    def test_expand_follows_promtool(self) -> None:
        """'a+bxn' is n+1 values from a in steps of b; 'axn' repeats a n+1 times."""
        assert expand("1 2x1 0+2x2 _ stale 5-1x1") == [1, 2, 2, 0, 2, 4, None, None, 5, 4]

    def replay_series(self) -> dict[str, list[float | None]]:
        document = yaml.safe_load((UNIT_TEST_DIR / "exporter_test.yml").read_text(encoding="utf-8"))
        found: dict[str, list[float | None]] = {}
        for group in document["tests"]:
            for series in group.get("input_series", []):
                text = " ".join(series["series"].split())
                if f'project_id="{REPLAY_PROJECT}"' not in text:
                    continue
                if text.startswith("modelarts_credentials_refused"):
                    found["refused"] = expand(series["values"])
                elif 'code="401"' in text:
                    found["401"] = expand(series["values"])
        return found

    def test_the_promtool_replay_is_the_exporters_real_backoff(self) -> None:
        """The two-hour refusal replay in exporter_test.yml is what the exporter's own poller
        does (tests.unit.test_poller.refusal_replay, the real TargetPoller on a fake clock):
        the 401 count rises exactly at the minutes it asks, and modelarts_credentials_refused
        has its value at every minute."""
        from tests.unit.test_poller import refusal_replay

        series = self.replay_series()
        assert set(series) == {"refused", "401"}, series.keys()
        minutes = len(series["refused"])
        assert minutes >= 121
        rows = refusal_replay(minutes, accept_from=120)
        asked = 0
        expected_401, expected_refused = [], []
        for minute, sent, refused in rows:
            asked += sent and minute < 120
            expected_401.append(float(asked))
            expected_refused.append(1.0 if refused else 0.0)
        assert series["401"] == expected_401
        assert series["refused"] == expected_refused


# --- the Alertmanager configuration --------------------------------------------------------

ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("amtool")
    if exe is None:
        pytest.fail("amtool not found: apt-get install prometheus-alertmanager")
    return subprocess.run(
        [exe, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


class TestAlertmanager:
    @staticmethod
    def config() -> dict[str, Any]:
        document = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
        assert isinstance(document, dict)
        return document

    def test_amtool_check_config_passes(self) -> None:
        """`amtool check-config` accepts deploy/alertmanager/alertmanager.yml."""
        result = amtool("check-config", ALERTMANAGER)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout

    @pytest.mark.parametrize(
        ("severity", "receiver"),
        [
            ("critical", "modelarts-pager"),
            ("warning", "modelarts-tickets"),
            ("info", "modelarts-none"),
        ],
    )
    def test_each_severity_routes_to_its_receiver(self, severity: str, receiver: str) -> None:
        """amtool's routing test sends an alert of each severity to its receiver."""
        result = amtool(
            "config", "routes", "test", "--config.file", ALERTMANAGER,
            "alertname=ModelArtsJobsAbnormal", f"severity={severity}", "project_id=p",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == receiver

    def test_grouping_is_by_project_and_alert_name(self) -> None:
        """One notification per project and alert name, however many items fail."""
        assert self.config()["route"]["group_by"] == ["alertname", "project_id"]

    def test_inhibitions_name_existing_alerts(self) -> None:
        """Every alert name an inhibition's matchers spell out is an alert of rules.yml."""
        names = {rule["alert"] for rule in alerts()}
        mentioned: set[str] = set()
        for rule in self.config()["inhibit_rules"]:
            for matcher in [*rule["source_matchers"], *rule["target_matchers"]]:
                match = re.fullmatch(r'alertname=~?"([^"]+)"', matcher)
                assert match, matcher
                mentioned.update(match.group(1).split("|"))
        assert mentioned, "no inhibitions"
        assert mentioned <= names, sorted(mentioned - names)
