"""End-to-end tier: every file here has tests marked ``e2e``, which start real processes (the
exporter, the simulator, check-config, Prometheus, Alertmanager); the rest of such a file
stays with it."""
