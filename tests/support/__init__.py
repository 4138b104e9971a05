"""Helpers shared by the tiers; ``stack`` and ``screenshots`` also run as ``python -m``."""
