"""Prometheus exporter for Huawei Cloud ModelArts pool workloads and job resource specs."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
