"""The exporter's series as more than one dashboard reads them: metric names, the label
sets a series is counted once by (``panels.once``), a pool's current phase, and the texts
and colours of states.
"""

from __future__ import annotations

__all__ = [
    "JOBS",
    "PER_ITEM",
    "PER_POOL",
    "PER_PROJECT",
    "PER_STATUS",
    "PHASES",
    "REACHABLE",
    "current_phase",
]

PHASES = {
    "Creating": ("Creating", "blue"),
    "Running": ("Running", "green"),
    "Abnormal": ("Abnormal", "orange"),
    "Deleting": ("Deleting", "purple"),
    "Error": ("Error", "red"),
}
REACHABLE = {0: ("down", "red"), 1: ("up", "green")}

JOBS = "modelarts_pool_jobs"
PER_STATUS = "project_id, region, pool, type, status"
PER_POOL = "project_id, region, pool"
PER_PROJECT = "project_id, region"
PER_ITEM = "project_id, region, api, target"


def current_phase(selector: str) -> str:
    """One series per pool, its ``phase`` label the pool's phase: replicas that polled
    ListPools on either side of a change disagree for a while, and a table or a join needs
    one answer, so one of their phases is taken."""
    return f"topk by ({PER_POOL}) (1, max by ({PER_POOL}, phase) ({selector} == 1))"
