"""The repository's scripts that are not in a package (``grafana/generate.py``,
``grafana/render.py``, ``deploy/prometheus/mixin.py``), imported by path for the tests."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from types import ModuleType

from tests.support.processes import ROOT

__all__ = ["generator", "load", "mixin", "renderer"]


@cache
def load(relative: str, name: str) -> ModuleType:
    """The script at ``ROOT / relative`` as the module ``name``, registered in
    ``sys.modules`` (its dataclasses look their module up there); loaded once. Its directory
    goes first on ``sys.path``, as when Python runs the script, so that it imports the modules
    beside it (``grafana/generate.py`` imports ``grafana/panels.py`` and the others), never
    an installed module of the same name."""
    path = ROOT / relative
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def generator() -> ModuleType:
    """``grafana/generate.py``: the dashboards."""
    return load("grafana/generate.py", "grafana_generate")


def renderer() -> ModuleType:
    """``grafana/render.py``: the dashboards drawn into PNG files."""
    return load("grafana/render.py", "grafana_render")


def mixin() -> ModuleType:
    """``deploy/prometheus/mixin.py``: the alerting rules and their tests."""
    return load("deploy/prometheus/mixin.py", "modelarts_mixin")
