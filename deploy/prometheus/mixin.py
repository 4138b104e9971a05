#!/usr/bin/env python3
"""The alerting mixin: settings.yml + templates → rules, their tests, and Operator resources.

Every threshold and window of the alerts lives in ``deploy/prometheus/settings.yml``. This
script substitutes them into the templates and writes::

    deploy/prometheus/templates/rules.yml     → deploy/prometheus/rules.yml
    deploy/prometheus/templates/tests/*.yml   → deploy/prometheus/tests/*.yml   (promtool)
    deploy/prometheus/rules.yml               → deploy/kubernetes/base/prometheusrule.yaml
    deploy/alertmanager/alertmanager.yml      → deploy/kubernetes/components/alertmanager-config/
                                                alertmanagerconfig.yaml

    python3 deploy/prometheus/mixin.py            write what changed (``make rules``)
    python3 deploy/prometheus/mixin.py --check    exit 1 if a written file is stale

A template names a setting as ``${name}``: ``${runbook_url}``, ``${step}`` or
``${ModelArtsJobBacklog.window}``. Tests need arithmetic on them, so a placeholder is an
expression of settings, numbers and durations with ``+ - * /`` and parentheses:
``${ModelArtsJobsAbnormal.for + 2m}`` is a duration (``17m``),
``${ModelArtsJobsAbnormal.for / 1m + 25}`` a number (``40``). ``$`` not followed by ``{``
(PromQL's ``$1``, Go templates' ``$labels``) is left alone.

The settings are checked before anything is written: every alert and knob must be there with
a value of its kind, durations whole minutes, and every inhibition of
``deploy/alertmanager/alertmanager.yml`` must have its source alert fire before its targets
could (a shorter ``for:``), or the inhibited alert would page before its cause does; and the
inhibiting alerts must keep firing (``keep_inhibiting_for``) longer than Alertmanager's
``group_interval``, or the alerts they held back would be notified when they resolve.

Exit codes: 0 done (or up to date), 1 stale (``--check``), 2 bad settings or templates.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Duration",
    "MixinError",
    "Settings",
    "alertmanager_config",
    "check_holds",
    "check_inhibitions",
    "load_settings",
    "outputs",
    "parse_settings",
    "prometheus_rule",
    "render",
    "rules_text",
    "unit_test_texts",
]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SETTINGS = HERE / "settings.yml"
TEMPLATES = HERE / "templates"
RULES = HERE / "rules.yml"
TESTS = HERE / "tests"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
PROMETHEUSRULE = ROOT / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml"
AMCONFIG = (
    ROOT
    / "deploy"
    / "kubernetes"
    / "components"
    / "alertmanager-config"
    / "alertmanagerconfig.yaml"
)

#: How far apart job counts are compared (the rules' subquery step and offset). One minute
#: matches the usual evaluation interval and the exporter's default poll interval; the fast
#: end-to-end stack scales it with everything else.
STEP_SECONDS = 60.0


class MixinError(Exception):
    """Settings or a template that cannot be rendered; the message names the key."""


# --- durations ---------------------------------------------------------------------------

_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_DURATION = re.compile(r"(?:(\d+)(ms|y|w|d|h|m|s))+")
_DURATION_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")


@dataclass(frozen=True, order=True)
class Duration:
    """A duration in seconds, written the way Prometheus writes them (``1h30m``)."""

    seconds: float

    @classmethod
    def parse(cls, text: str) -> Duration:
        if not _DURATION.fullmatch(text):
            raise ValueError(f"not a duration like 15m or 1h30m: {text!r}")
        return cls(float(sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))))

    def __str__(self) -> str:
        millis = round(self.seconds * 1000)
        if millis <= 0:
            return "0s"
        parts = []
        for unit in ("d", "h", "m", "s"):
            size = int(_UNITS[unit] * 1000)
            if millis >= size:
                parts.append(f"{millis // size}{unit}")
                millis %= size
        if millis:
            parts.append(f"{millis}ms")
        return "".join(parts)


Value = Duration | float | str


# --- settings ----------------------------------------------------------------------------


def _duration(value: object) -> Duration:
    if not isinstance(value, str):
        raise TypeError(f"expected a duration such as 15m, got {value!r}")
    duration = Duration.parse(value)
    if duration.seconds <= 0 or duration.seconds % 60:
        raise ValueError(f"must be a positive whole number of minutes, got {value!r}")
    return duration


def _count(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a whole number of at least 1, got {value!r}")
    return float(value)


def _factor(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 1:
        raise ValueError(f"expected a number above 1, got {value!r}")
    return float(value)


Kind = Callable[[object], Value]

#: Every alert and its knobs: what settings.yml must hold, no more, no less.
SCHEMA: dict[str, dict[str, Kind]] = {
    "ModelArtsJobsAbnormal": {"min_jobs": _count, "for": _duration},
    "ModelArtsJobsFailed": {"min_jobs": _count, "window": _duration},
    "ModelArtsJobBacklog": {"min_waiting": _count, "window": _duration},
    "ModelArtsPoolUnhealthy": {"for": _duration},
    "ModelArtsPoolNodesAbnormal": {"min_nodes": _count, "for": _duration},
    "ModelArtsAcceleratorSpecExhausted": {"for": _duration},
    "ModelArtsSpecExhausted": {"for": _duration},
    "ModelArtsExporterDown": {"for": _duration},
    "ModelArtsExporterAbsent": {"for": _duration},
    "ModelArtsExporterConfigReloadFailed": {"for": _duration},
    "ModelArtsCredentialsReloadFailed": {"for": _duration},
    "ModelArtsCredentialsExpiring": {"left": _duration, "for": _duration},
    "ModelArtsAuthenticationFailed": {"for": _duration},
    "ModelArtsApiUnreachable": {"for": _duration},
    "ModelArtsApiThrottled": {"window": _duration, "for": _duration},
    "ModelArtsPoolNotFound": {"for": _duration},
    "ModelArtsPollFailing": {"for": _duration},
    "ModelArtsDataStale": {"poll_intervals": _factor, "for": _duration},
    "ModelArtsPollCycleOverrun": {"window": _duration},
}


@dataclass(frozen=True)
class Settings:
    """The validated knobs. ``values`` maps ``Alert.knob`` (and the top-level names) to
    their value; ``lookup`` is what placeholders see."""

    values: Mapping[str, Value] = field(default_factory=dict)

    def lookup(self, name: str) -> Value:
        try:
            return self.values[name]
        except KeyError:
            raise MixinError(f"unknown setting {name!r}") from None

    def duration(self, name: str) -> Duration:
        """``lookup(name)``, which must be a duration."""
        value = self.lookup(name)
        if not isinstance(value, Duration):
            raise MixinError(f"setting {name!r} is {value!r}, not a duration")
        return value

    def scaled(self, factor: float) -> Settings:
        """Every duration (``for:``, windows, the step) multiplied by ``factor``: the fast
        end-to-end stack runs the same rules at, say, a 30th of the time."""
        if not factor > 0:
            raise MixinError(f"scale factor must be positive, got {factor!r}")
        return replace(
            self,
            values={
                name: Duration(value.seconds * factor) if isinstance(value, Duration) else value
                for name, value in self.values.items()
            },
        )

    def wait(self, alert: str) -> Duration | None:
        """How long ``alert`` takes to fire: its ``for``, or its window when it has none."""
        for knob in ("for", "window"):
            value = self.values.get(f"{alert}.{knob}")
            if isinstance(value, Duration):
                return value
        return None


def _string(value: object, where: str, pattern: str, expected: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise MixinError(f"{where}: expected {expected}, got {value!r}")
    return value


def parse_settings(document: object, where: str = "settings") -> Settings:
    """Validate settings.yml's content; errors name the key (``alerts.X.for``)."""
    if not isinstance(document, dict):
        raise MixinError(f"{where}: expected a mapping")
    unknown = sorted(
        set(document) - {"runbook_url", "exporter_job", "keep_inhibiting_for", "alerts"}
    )
    if unknown:
        raise MixinError(f"{where}: unknown key {unknown[0]!r}")
    values: dict[str, Value] = {
        "runbook_url": _string(
            document.get("runbook_url"),
            f"{where}: runbook_url",
            r"https?://[^\s#\"'<>]+",
            "an http(s) address without a #fragment",
        ),
        "exporter_job": _string(
            document.get("exporter_job"),
            f"{where}: exporter_job",
            r"[A-Za-z0-9_.:/-]+",
            "a scrape job name",
        ),
        "step": Duration(STEP_SECONDS),
    }
    try:
        values["keep_inhibiting_for"] = _duration(document.get("keep_inhibiting_for"))
    except (TypeError, ValueError) as error:
        raise MixinError(f"{where}: keep_inhibiting_for: {error}") from None
    alerts = document.get("alerts")
    if not isinstance(alerts, dict):
        raise MixinError(f"{where}: alerts: expected a mapping of alert names")
    for alert in alerts.keys() - SCHEMA.keys():
        raise MixinError(f"{where}: alerts.{alert}: unknown alert (known: {', '.join(SCHEMA)})")
    for alert, knobs in SCHEMA.items():
        given = alerts.get(alert)
        if not isinstance(given, dict):
            raise MixinError(f"{where}: alerts.{alert}: missing, or not a mapping")
        for knob in given.keys() - knobs.keys():
            raise MixinError(f"{where}: alerts.{alert}.{knob}: unknown knob ({', '.join(knobs)})")
        for knob, kind in knobs.items():
            if knob not in given:
                raise MixinError(f"{where}: alerts.{alert}.{knob}: missing")
            try:
                values[f"{alert}.{knob}"] = kind(given[knob])
            except (TypeError, ValueError) as error:
                raise MixinError(f"{where}: alerts.{alert}.{knob}: {error}") from None
    return Settings(values)


def load_settings(path: Path = SETTINGS) -> Settings:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise MixinError(f"{path}: {error}") from None
    return parse_settings(document, str(path))


# --- placeholders ------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_TOKEN = re.compile(
    r"\s*(?:(\d+(?:ms|[ywdhms])(?:\d+(?:ms|[ywdhms]))*)|(\d+(?:\.\d+)?)|([A-Za-z_][\w.]*)|(.))"
)


class _Expression:
    """A recursive-descent reader of one placeholder: sums of products of durations,
    numbers and settings."""

    def __init__(self, text: str, settings: Settings) -> None:
        self.text = text
        self.settings = settings
        self.tokens = list(self._tokens(text))
        self.at = 0

    def _tokens(self, text: str) -> Iterator[tuple[str, str]]:
        for match in _TOKEN.finditer(text.rstrip()):
            duration, number, name, other = match.groups()
            if duration:
                yield "value", duration
            elif number:
                yield "number", number
            elif name:
                yield "name", name
            else:
                yield "op", other

    def value(self) -> Value:
        result = self._sum()
        if self.at != len(self.tokens):
            raise MixinError(f"${{{self.text}}}: unexpected {self.tokens[self.at][1]!r}")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def _sum(self) -> Value:
        return self._chain(("+", "-"), self._product)

    def _product(self) -> Value:
        return self._chain(("*", "/"), self._atom)

    def _chain(self, ops: tuple[str, str], operand: Callable[[], Value]) -> Value:
        """``operand (op operand)*``, left to right, for the operators ``ops``."""
        left = operand()
        while self._peek() in ops:
            op = self.tokens[self.at][1]
            self.at += 1
            left = self._apply(op, left, operand())
        return left

    def _atom(self) -> Value:
        if self.at >= len(self.tokens):
            raise MixinError(f"${{{self.text}}}: incomplete expression")
        kind, text = self.tokens[self.at]
        self.at += 1
        if kind == "value":
            return Duration.parse(text)
        if kind == "number":
            return float(text)
        if kind == "name":
            return self.settings.lookup(text)
        if text == "(":
            inner = self._sum()
            if self._peek() != ")":
                raise MixinError(f"${{{self.text}}}: missing ')'")
            self.at += 1
            return inner
        raise MixinError(f"${{{self.text}}}: unexpected {text!r}")

    def _apply(self, op: str, left: Value, right: Value) -> Value:
        a = float(left.seconds) if isinstance(left, Duration) else left
        b = float(right.seconds) if isinstance(right, Duration) else right
        if not isinstance(a, float) or not isinstance(b, float):
            raise MixinError(f"${{{self.text}}}: {op} needs durations or numbers")
        durations = isinstance(left, Duration), isinstance(right, Duration)
        if op in "+-":
            if durations[0] != durations[1]:
                raise MixinError(f"${{{self.text}}}: cannot {op} a duration and a number")
            result = a + b if op == "+" else a - b
            return Duration(result) if durations[0] else result
        if op == "*":
            if all(durations):
                raise MixinError(f"${{{self.text}}}: cannot multiply two durations")
            return Duration(a * b) if any(durations) else a * b
        if durations[1] and not durations[0]:
            raise MixinError(f"${{{self.text}}}: cannot divide a number by a duration")
        if b == 0:
            raise MixinError(f"${{{self.text}}}: division by zero")
        return Duration(a / b) if durations[0] and not durations[1] else a / b


def _text(value: Value) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    return str(value)


def render(template: str, settings: Settings) -> str:
    """``template`` with every ``${...}`` replaced by the value of its expression."""
    return _PLACEHOLDER.sub(
        lambda match: _text(_Expression(match.group(1), settings).value()), template
    )


# --- outputs -----------------------------------------------------------------------------


def _generated(source: str) -> str:
    return (
        f"# GENERATED by deploy/prometheus/mixin.py from {source} and\n"
        "# deploy/prometheus/settings.yml: do not edit. Change the knobs in settings.yml (or the\n"
        "# template), then run `make rules`.\n"
    )


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def rules_text(settings: Settings, templates: Path = TEMPLATES) -> str:
    """rules.yml for ``settings``: the rendered template under a generated-file header."""
    template = templates / "rules.yml"
    body = render(template.read_text(encoding="utf-8"), settings)
    document = yaml.safe_load(body)
    if not isinstance(document, dict) or set(document) != {"groups"}:
        raise MixinError(f"{template}: must render to a mapping with only 'groups'")
    return _generated(_relative(template)) + body


def unit_test_texts(settings: Settings, templates: Path = TEMPLATES) -> dict[str, str]:
    """File name → promtool unit-test file for ``settings``."""
    texts = {}
    for template in sorted((templates / "tests").glob("*.yml")):
        body = render(template.read_text(encoding="utf-8"), settings)
        yaml.safe_load(body)
        texts[template.name] = _generated(_relative(template)) + body
    return texts


PROMETHEUSRULE_HEADER = """\
# GENERATED by deploy/prometheus/mixin.py from deploy/prometheus/rules.yml: do not edit.
# Change deploy/prometheus/settings.yml (or the rules template), then run `make rules`;
# the tests fail while this file is stale (deploy/prometheus/mixin.py --check).
#
# Prometheus Operator loads a PrometheusRule only if its Prometheus resource's ruleSelector
# (and ruleNamespaceSelector) match it: select `role: alert-rules`, or add your own label in
# an overlay (see deploy/kubernetes/README.md).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: modelarts-exporter
  labels:
    app.kubernetes.io/name: modelarts-exporter
    app.kubernetes.io/component: exporter
    role: alert-rules
spec:
"""


def _groups_section(text: str) -> list[str]:
    """The lines of the top-level `groups:` key: from it to the next top-level key."""
    lines = text.splitlines()
    try:
        start = lines.index("groups:")
    except ValueError:
        raise MixinError("no top-level 'groups:' line (block style) found") from None
    end = next(
        (
            number
            for number in range(start + 1, len(lines))
            if lines[number]
            and not lines[number][0].isspace()
            and not lines[number].startswith("#")
        ),
        len(lines),
    )
    section = lines[start:end]
    while section and not section[-1].strip():
        section.pop()
    return section


def prometheus_rule(rules: str) -> str:
    """The PrometheusRule manifest: rules.yml's `groups:` section verbatim, comments
    included, indented under `spec:`; it must parse back to exactly the same groups."""
    source: Any = yaml.safe_load(rules)
    body = "".join(f"  {line}\n" if line.strip() else "\n" for line in _groups_section(rules))
    manifest = PROMETHEUSRULE_HEADER + body
    rendered: Any = yaml.safe_load(manifest)
    if rendered["spec"]["groups"] != source["groups"]:
        raise MixinError("the wrapped groups do not parse back to those of the rules file")
    return manifest


AMCONFIG_HEADER = """\
# GENERATED by deploy/prometheus/mixin.py from deploy/alertmanager/alertmanager.yml: do not
# edit. Change alertmanager.yml, then run `make rules`.
#
# The same routes, receivers and inhibitions for Prometheus Operator's Alertmanager. The
# Operator scopes an AlertmanagerConfig to alerts whose `namespace` label is its own unless
# the Alertmanager resource sets `alertmanagerConfigMatcherStrategy: {type: None}`; the
# exporter's alerts carry no namespace, so set it (deploy/kubernetes/README.md). Replace the
# receivers' URLs (or use urlSecret) before you apply it.
"""

_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')
_DURATION_KEYS = {
    "group_wait": "groupWait",
    "group_interval": "groupInterval",
    "repeat_interval": "repeatInterval",
}


def _matchers(texts: object, where: str) -> list[dict[str, str]]:
    if not isinstance(texts, list):
        raise MixinError(f"{where}: expected a list of matchers")
    found = []
    for text in texts:
        match = _MATCHER.match(str(text))
        if match is None:
            raise MixinError(f'{where}: write matchers as name="value" (or =~, !=, !~): {text!r}')
        name, op, value = match.groups()
        found.append({"name": name, "value": value.replace('\\"', '"'), "matchType": op})
    return found


def _route(route: Mapping[str, Any], where: str) -> dict[str, Any]:
    known = {"receiver", "group_by", "matchers", "continue", "routes", *_DURATION_KEYS}
    unknown = sorted(set(route) - known)
    if unknown:
        raise MixinError(f"{where}: {unknown[0]!r} has no AlertmanagerConfig form here")
    out: dict[str, Any] = {}
    if "receiver" in route:
        out["receiver"] = route["receiver"]
    if "group_by" in route:
        out["groupBy"] = list(route["group_by"])
    for key, camel in _DURATION_KEYS.items():
        if key in route:
            out[camel] = route[key]
    if "matchers" in route:
        out["matchers"] = _matchers(route["matchers"], f"{where}.matchers")
    if "continue" in route:
        out["continue"] = route["continue"]
    if "routes" in route:
        out["routes"] = [
            _route(child, f"{where}.routes[{i}]") for i, child in enumerate(route["routes"])
        ]
    return out


def _receiver(receiver: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(receiver) - {"name", "webhook_configs"})
    if unknown:
        raise MixinError(f"{where}: {unknown[0]!r} is not rendered (webhook receivers only)")
    out: dict[str, Any] = {"name": receiver["name"]}
    hooks = receiver.get("webhook_configs") or []
    if hooks:
        out["webhookConfigs"] = [
            {"url": hook["url"], "sendResolved": bool(hook.get("send_resolved", True))}
            for hook in hooks
        ]
    return out


def alertmanager_config(text: str) -> str:
    """The AlertmanagerConfig (monitoring.coreos.com/v1alpha1) for alertmanager.yml."""
    document: Any = yaml.safe_load(text)
    if not isinstance(document, dict) or "route" not in document:
        raise MixinError("alertmanager.yml: expected a mapping with a route")
    spec = {
        "route": _route(document["route"], "route"),
        "receivers": [
            _receiver(r, f"receivers[{i}]") for i, r in enumerate(document.get("receivers") or [])
        ],
        "inhibitRules": [
            {
                "sourceMatch": _matchers(rule["source_matchers"], f"inhibit_rules[{i}]"),
                "targetMatch": _matchers(rule["target_matchers"], f"inhibit_rules[{i}]"),
                "equal": list(rule.get("equal") or []),
            }
            for i, rule in enumerate(document.get("inhibit_rules") or [])
        ],
    }
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": {
            "name": "modelarts-exporter",
            "labels": {
                "app.kubernetes.io/name": "modelarts-exporter",
                "app.kubernetes.io/component": "alerting",
            },
        },
        "spec": spec,
    }
    return AMCONFIG_HEADER + yaml.dump(manifest, Dumper=_IndentedDumper, sort_keys=False, width=100)


class _IndentedDumper(yaml.SafeDumper):
    """Block sequences indented under their key, as the repository's YAML is written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _alert_names(matchers: list[dict[str, str]], names: Sequence[str]) -> list[str]:
    """The alert names among ``names`` that ``matchers``' alertname terms select."""
    chosen = list(names)
    for matcher in (m for m in matchers if m["name"] == "alertname"):
        regex = re.compile(
            matcher["value"] if "~" in matcher["matchType"] else re.escape(matcher["value"])
        )
        hit = {n for n in chosen if regex.fullmatch(n)}
        chosen = [n for n in chosen if (n in hit) == (matcher["matchType"] in ("=", "=~"))]
    return chosen


def _group_intervals(route: Mapping[str, Any], inherited: str = "5m") -> Iterator[Duration]:
    """Every group_interval that applies in a route tree (Alertmanager's default: 5m)."""
    own = str(route.get("group_interval", inherited))
    yield Duration.parse(own)
    for child in route.get("routes") or []:
        yield from _group_intervals(child, own)


def check_inhibitions(settings: Settings, alertmanager: str) -> None:
    """Each inhibition's source alerts must fire sooner than its targets can: a target that
    became firing first would be notified before its cause, and inhibited only afterwards.
    And they must keep firing longer than any group_interval, so that targets that resolve
    with them are flushed while still inhibited."""
    document: Any = yaml.safe_load(alertmanager)
    hold = settings.duration("keep_inhibiting_for")
    longest = max(_group_intervals(document.get("route") or {}))
    if not hold > longest:
        raise MixinError(
            f"keep_inhibiting_for: {hold} is not longer than alertmanager.yml's group_interval "
            f"({longest}): inhibited alerts would be notified when they resolve"
        )
    for source, target in _inhibitions(document, list(SCHEMA)):
        slow, fast = settings.wait(source), settings.wait(target)
        if slow is not None and fast is not None and not slow < fast:
            raise MixinError(
                f"alerts.{source}: fires after {slow}, not sooner than "
                f"{target} ({fast}), which alertmanager.yml lets it inhibit"
            )


def _inhibitions(document: Any, names: Sequence[str]) -> Iterator[tuple[str, str]]:
    """Every (source, target) pair of alert names that alertmanager.yml's inhibit_rules
    let the first inhibit the second."""
    for i, rule in enumerate(document.get("inhibit_rules") or []):
        where = f"alertmanager.yml: inhibit_rules[{i}]"
        sources = _alert_names(_matchers(rule["source_matchers"], where), names)
        targets = _alert_names(_matchers(rule["target_matchers"], where), names)
        if not sources or not targets:
            raise MixinError(f"{where}: matches no alert of settings.yml on one side")
        for source in sources:
            for target in targets:
                yield source, target


def check_holds(rules: str, alertmanager: str, step: Duration) -> None:
    """An inhibiting alert must keep firing at least a ``step`` (one evaluation, at most)
    longer than each alert it inhibits that keeps firing too (keep_firing_for): when one
    cause ends both, resolved in the same evaluation, the target's group may be flushed in
    the moment between the two "resolved", while nothing inhibits it, and be notified as
    firing. (A target that does not keep firing resolves with its own condition.)"""
    holds = {
        rule["alert"]: Duration.parse(rule.get("keep_firing_for", "0s"))
        for group in yaml.safe_load(rules)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    for source, target in _inhibitions(yaml.safe_load(alertmanager), list(holds)):
        held = holds[target].seconds
        if held and holds[source].seconds < held + step.seconds:
            raise MixinError(
                f"{source}: keeps firing for {holds[source]} after its cause, not a {step} "
                f"step longer than {target} ({holds[target]}), which alertmanager.yml lets it "
                "inhibit: the two could resolve together and the second be notified"
            )


def outputs(settings: Settings, output_dir: Path | None = None) -> dict[Path, str]:
    """Every file this script writes, with its content for ``settings``. With
    ``output_dir``, only the rules and their tests, as ``rules.yml`` and ``tests/*.yml``
    there (for a trial of other settings that leaves the repository alone)."""
    alertmanager = ALERTMANAGER.read_text(encoding="utf-8")
    check_inhibitions(settings, alertmanager)
    rules = rules_text(settings)
    check_holds(rules, alertmanager, settings.duration("step"))
    tests = unit_test_texts(settings)
    if output_dir is not None:
        return {
            output_dir / "rules.yml": rules,
            **{output_dir / "tests" / name: text for name, text in tests.items()},
        }
    files = {
        RULES: rules,
        PROMETHEUSRULE: prometheus_rule(rules),
        AMCONFIG: alertmanager_config(alertmanager),
    }
    files.update({TESTS / name: text for name, text in tests.items()})
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a written file is stale")
    parser.add_argument("--settings", type=Path, default=SETTINGS, help="default: %(default)s")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write only rules.yml and tests/ there (try other settings without touching "
        "the repository)",
    )
    args = parser.parse_args(argv)
    try:
        files = outputs(load_settings(args.settings), args.output_dir)
    except (MixinError, OSError, yaml.YAMLError) as error:
        print(f"mixin: {error}", file=sys.stderr)
        return 2
    tests = TESTS if args.output_dir is None else args.output_dir / "tests"
    extra = sorted(set(tests.glob("*.yml")) - set(files))
    stale = [
        path
        for path, text in files.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    if args.check:
        for path in [*stale, *extra]:
            print(f"mixin: {_relative(path)} is stale; run `make rules`", file=sys.stderr)
        return 1 if stale or extra else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {_relative(path)}")
    for path in extra:
        path.unlink()
        print(f"removed {_relative(path)} (no template)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
