"""``python -m exporter.simulator``: see :mod:`exporter.simulator.cli`."""

from __future__ import annotations

from exporter.simulator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
