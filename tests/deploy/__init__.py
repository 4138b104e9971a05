"""Deploy tier: the artefacts an operator installs (Kubernetes manifests, the systemd unit, the
image, the alerting rules and their mixin, the Grafana dashboards and their renderer), checked with
their tools."""
