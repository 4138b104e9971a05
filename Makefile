# The two commands of the README's Quickstart, and a few more.
#   make demo   the exporter against its built-in simulator: http://localhost:10072/metrics
#               (PORT=9999: on another port)
#   make test   every check: ruff, mypy --strict, pytest (tests/unit, tests/deploy, tests/e2e)
#   make test-unit  the unit tier only (pytest tests/unit, no lint): under a minute
#   make stack  simulator + exporter + Prometheus + Alertmanager on loopback, notifications
#               printed (FAST=1: every duration 30 times shorter)
#   make screenshots  the stack for about four minutes, then docs/images/<dashboard uid>.png:
#               each Grafana dashboard drawn from its Prometheus by grafana/render.py
#   make rules  the alerting rules, their promtool tests and the Operator resources, from
#               deploy/prometheus/settings.yml (thresholds and windows) and the templates
#   make bench  the /metrics latency, render and memory benchmarks (docs/performance.md)
#   make soak   2000 poll cycles under random faults: RSS, fds, threads, logs (docs/performance.md)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# make demo PORT=9999; empty: the default port. Set here so that a PORT in the
# environment is not taken (the command line still overrides it).
PORT   :=

.PHONY: demo test test-unit rules stack screenshots bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/modelarts-exporter demo --log.format=console $(if $(PORT),--web.listen-address=:$(PORT))

test: $(VENV)/.test
	scripts/ensure-tools
	VENV=$(VENV) scripts/check

# The in-process tests (tests/unit/); one of them runs promtool check metrics.
test-unit: $(VENV)/.test
	scripts/ensure-tools
	$(BIN)/python -m pytest tests/unit

rules: $(VENV)/.runtime
	$(BIN)/python deploy/prometheus/mixin.py

stack: $(VENV)/.runtime
	scripts/ensure-tools
	$(BIN)/python -m tests.support.stack $(if $(FAST),--fast)

screenshots: $(VENV)/.test
	scripts/ensure-tools
	$(BIN)/python -m tests.support.screenshots

bench: $(VENV)/.test
	$(BIN)/python bench/metrics_latency.py
	$(BIN)/python bench/render.py

soak: $(VENV)/.test
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
