"""deploy/prometheus/mixin.py: settings → rules, tests and Operator resources.

The whole loop (change a knob, run the script, promtool passes) is in tests/deploy/test_rules.py;
here are its parts: durations, placeholder arithmetic, settings validation (a bad value
exits 2 naming the key) and the inhibition-order check.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.processes import run_python
from tests.support.scripts import mixin

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "deploy" / "prometheus" / "settings.yml"
SCRIPT = ROOT / "deploy" / "prometheus" / "mixin.py"


def settings_document() -> dict[str, Any]:
    document = yaml.safe_load(SETTINGS.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def render(text: str, document: dict[str, Any] | None = None) -> str:
    settings = mixin().parse_settings(document or settings_document())
    result = mixin().render(text, settings)
    assert isinstance(result, str)
    return result


class TestDuration:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("15m", 900), ("1h30m", 5400), ("90s", 90), ("500ms", 0.5), ("1d", 86400)],
    )
    def test_parses_prometheus_durations(self, text: str, seconds: float) -> None:
        """Durations are read the way Prometheus writes them."""
        assert mixin().Duration.parse(text).seconds == seconds

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [(900, "15m"), (5400, "1h30m"), (90, "1m30s"), (2, "2s"), (0.5, "500ms")],
    )
    def test_writes_the_shortest_prometheus_form(self, seconds: float, text: str) -> None:
        """A duration prints as Prometheus writes it, largest units first."""
        assert str(mixin().Duration(seconds)) == text

    @pytest.mark.parametrize("text", ["", "15", "m", "1.5m", "15 m", "-1m"])
    def test_rejects_what_is_not_a_duration(self, text: str) -> None:
        """Anything else is a ValueError."""
        with pytest.raises(ValueError, match="not a duration"):
            mixin().Duration.parse(text)


class TestPlaceholders:
    @pytest.mark.parametrize(
        ("template", "expected"),
        [
            ("${ModelArtsJobsAbnormal.for}", "15m"),
            ("${ModelArtsJobsAbnormal.for + 2m}", "17m"),
            ("${ModelArtsJobsAbnormal.for / 1m + 25}", "40"),
            ("${(ModelArtsJobsAbnormal.for + 5m) * 2}", "40m"),
            ("${ModelArtsJobBacklog.min_waiting - 1}", "0"),
            ("${ModelArtsDataStale.poll_intervals * 60}", "180"),
            ("${step}", "1m"),
            ("${exporter_job}", "modelarts-exporter"),
        ],
    )
    def test_expressions_of_settings(self, template: str, expected: str) -> None:
        """Settings, durations and numbers combine with + - * / and parentheses; a duration
        result prints as a duration, a number as an integer when whole."""
        assert render(template) == expected

    def test_dollar_signs_that_are_not_placeholders_stay(self) -> None:
        """PromQL's "$1" and Go templates' $labels and $value are left alone."""
        text = 'label_replace(x, "pool", "$1", "target", "(.*)") {{ $labels.pool }} {{ $value }}'
        assert render(text) == text

    @pytest.mark.parametrize(
        ("template", "message"),
        [
            ("${ModelArtsJobsAbnormal.forr}", "unknown setting 'ModelArtsJobsAbnormal.forr'"),
            ("${ModelArtsJobsAbnormal.for + 1}", "cannot + a duration and a number"),
            ("${ModelArtsJobsAbnormal.for * 1m}", "cannot multiply two durations"),
            ("${2 / 1m}", "cannot divide a number by a duration"),
            ("${(1m + 2m}", "missing ')'"),
            ("${1m +}", "incomplete expression"),
            ("${1m 2m}", "unexpected '2m'"),
            ("${1m / 0}", "division by zero"),
        ],
    )
    def test_bad_expressions_say_what_is_wrong(self, template: str, message: str) -> None:
        """A placeholder that cannot be computed is a MixinError naming the problem."""
        with pytest.raises(mixin().MixinError, match=re.escape(message)):
            render(template)


def with_setting(path: str, value: object) -> dict[str, Any]:
    """settings.yml's content with one key (dotted path) set, or removed for ``...``."""
    document = copy.deepcopy(settings_document())
    *parents, last = path.split(".")
    node = document
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return document


class TestSettingsValidation:
    @pytest.mark.parametrize(
        ("path", "value", "message"),
        [
            ("alerts.ModelArtsJobBacklog.window", "90s", "ModelArtsJobBacklog.window: must be"),
            ("alerts.ModelArtsJobBacklog.window", 30, "ModelArtsJobBacklog.window: expected"),
            ("alerts.ModelArtsJobsFailed.min_jobs", 0, "alerts.ModelArtsJobsFailed.min_jobs:"),
            ("alerts.ModelArtsJobsFailed.min_jobs", True, "alerts.ModelArtsJobsFailed.min_jobs:"),
            ("alerts.ModelArtsDataStale.poll_intervals", 1, "ModelArtsDataStale.poll_intervals:"),
            ("alerts.ModelArtsJobsAbnormal.for", ..., "alerts.ModelArtsJobsAbnormal.for: missing"),
            ("alerts.ModelArtsJobsAbnormal.threshold", 3, "threshold: unknown knob"),
            ("alerts.ModelArtsTypo", {"for": "5m"}, "alerts.ModelArtsTypo: unknown alert"),
            ("alerts.ModelArtsPollFailing", ..., "alerts.ModelArtsPollFailing: missing"),
            ("runbook_url", "docs/runbook.md", "runbook_url: expected an http(s) address"),
            ("runbook_url", "https://x.example/runbook#top", "runbook_url: expected"),
            ("exporter_job", "", "exporter_job: expected a scrape job name"),
            ("colour", "blue", "unknown key 'colour'"),
            ("keep_inhibiting_for", "30s", "keep_inhibiting_for: must be a positive whole"),
        ],
    )
    def test_a_bad_value_names_its_key(self, path: str, value: object, message: str) -> None:
        """Every knob is checked: a wrong kind, a missing or unknown key is a MixinError
        that names the key."""
        with pytest.raises(mixin().MixinError) as error:
            mixin().parse_settings(with_setting(path, value))
        assert message in str(error.value)

    def test_an_inhibiting_alert_must_fire_first(self) -> None:
        """An alert that Alertmanager lets inhibit another must have the shorter `for`:
        otherwise the inhibited one would page before its cause does."""
        settings = mixin().parse_settings(
            with_setting("alerts.ModelArtsAuthenticationFailed.for", "10m")
        )
        alertmanager = (ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text()
        with pytest.raises(mixin().MixinError) as error:
            mixin().check_inhibitions(settings, alertmanager)
        assert "alerts.ModelArtsAuthenticationFailed: fires after 10m" in str(error.value)
        assert "not sooner than ModelArtsApiUnreachable (5m)" in str(error.value)

    def test_inhibiting_alerts_outlast_alertmanagers_group_interval(self) -> None:
        """keep_inhibiting_for must be longer than every group_interval of alertmanager.yml:
        the alerts it held back resolve meanwhile, and Alertmanager flushes their group only
        every group_interval; if the inhibiting alert were gone by then, their "resolved"
        would be notified though their "firing" never was."""
        settings = mixin().parse_settings(with_setting("keep_inhibiting_for", "5m"))
        alertmanager = (ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text()
        with pytest.raises(mixin().MixinError) as error:
            mixin().check_inhibitions(settings, alertmanager)
        assert (
            "keep_inhibiting_for: 5m is not longer than alertmanager.yml's group_interval (5m)"
            in (str(error.value))
        )
        slower = alertmanager.replace("group_interval: 5m", "group_interval: 10m")
        with pytest.raises(mixin().MixinError, match="group_interval \\(10m\\)"):
            mixin().check_inhibitions(mixin().parse_settings(settings_document()), slower)

    def test_an_inhibitor_outlasts_the_held_alerts_it_inhibits_by_a_step(self) -> None:
        """An inhibiting alert keeps firing a step longer than each alert it inhibits that
        also keeps firing: ModelArtsAuthenticationFailed over ModelArtsApiUnreachable. With
        equal holds one fixed key resolves both in one evaluation, and Alertmanager could
        flush ModelArtsApiUnreachable in between and page for it; the check refuses that,
        and the shipped rules pass it."""
        rules = (ROOT / "deploy" / "prometheus" / "rules.yml").read_text()
        alertmanager = (ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text()
        step = mixin().Duration.parse("1m")
        mixin().check_holds(rules, alertmanager, step)
        document = yaml.safe_load(rules)
        for group in document["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == "ModelArtsAuthenticationFailed":
                    rule["keep_firing_for"] = "7m"
        with pytest.raises(mixin().MixinError) as error:
            mixin().check_holds(yaml.safe_dump(document), alertmanager, step)
        assert str(error.value).startswith(
            "ModelArtsAuthenticationFailed: keeps firing for 7m after its cause, not a 1m step "
            "longer than ModelArtsApiUnreachable (7m)"
        )

    def test_the_script_exits_2_naming_the_key(self, tmp_path: Path) -> None:
        """Run with bad settings, the script writes nothing and exits 2 with the key."""
        bad = tmp_path / "settings.yml"
        bad.write_text(yaml.safe_dump(with_setting("alerts.ModelArtsJobsFailed.window", "1x")))
        out = tmp_path / "out"
        result = run_python(SCRIPT, "--settings", bad, "--output-dir", out)
        assert result.returncode == 2
        assert "alerts.ModelArtsJobsFailed.window" in result.stderr
        assert not out.exists()

    def test_scaling_multiplies_every_duration_and_nothing_else(self) -> None:
        """``scaled`` (the fast end-to-end stack) changes durations only: windows, for and
        the step; thresholds and names stay."""
        settings = mixin().parse_settings(settings_document())
        fast = settings.scaled(1 / 30)
        for name, value in settings.values.items():
            if isinstance(value, mixin().Duration):
                assert fast.values[name].seconds == pytest.approx(value.seconds / 30), name
            else:
                assert fast.values[name] == value, name
        assert str(fast.lookup("step")) == "2s"

    def test_a_duration_is_read_as_one_or_refused(self) -> None:
        """``duration`` gives a duration setting; any other kind is a MixinError naming the
        setting, never a check passed over."""
        settings = mixin().parse_settings(settings_document())
        assert str(settings.duration("step")) == "1m"
        with pytest.raises(mixin().MixinError, match=re.escape("'ModelArtsJobsFailed.min_jobs'")):
            settings.duration("ModelArtsJobsFailed.min_jobs")
