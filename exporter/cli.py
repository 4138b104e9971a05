"""Command line: Prometheus-style flags and the ``check-config`` and ``demo`` sub-commands.

::

    modelarts-exporter [--config.file=config.yaml] [--web.listen-address=:10072]
                       [--log.level=info] [--log.format=json|console] [--version]
    modelarts-exporter check-config [--config.file=…]   # print effective config, exit 0 or 2
    modelarts-exporter demo [--web.listen-address=…]    # built-in simulator + exporter

Exit codes: 0 stopped cleanly, 1 runtime failure (e.g. the port is taken), 2 bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import yaml

from exporter import __version__, config
from exporter.errors import ConfigError
from exporter.logs import LEVELS, make_logger

__all__ = ["DEFAULT_LISTEN_ADDRESS", "main"]

DEFAULT_PORT = 10072
DEFAULT_LISTEN_ADDRESS = f":{DEFAULT_PORT}"
EXIT_CONFIG = 2


def _common(suppress: bool) -> argparse.ArgumentParser:
    """Flags accepted before and after the sub-command."""
    parser = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config.file",
        dest="config_file",
        metavar="PATH",
        default=default or "config.yaml",
        help="configuration file (default: config.yaml)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="[HOST]:PORT",
        default=default or DEFAULT_LISTEN_ADDRESS,
        help=f"address for /metrics (default: {DEFAULT_LISTEN_ADDRESS})",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=LEVELS,
        default=default or "info",
        help="minimum log level (default: info)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=("json", "console"),
        default=default,
        help="json or console (default: json unless stdout is a terminal)",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelarts-exporter",
        description="Prometheus exporter for Huawei Cloud ModelArts pools and resource specs.",
        parents=[_common(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "check-config",
        parents=[_common(suppress=True)],
        help="validate the configuration, print it with secrets masked; exit 0 or 2",
    )
    commands.add_parser(
        "demo",
        parents=[_common(suppress=True)],
        help="run the exporter against its built-in ModelArts simulator",
    )
    return parser


def _load(path: str) -> config.Config | None:
    try:
        return config.load(path)
    except ConfigError as exc:
        print(f"modelarts-exporter: invalid configuration: {exc}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from exporter.demo import run_demo  # the simulator is loaded only for the demo

        log = make_logger(args.log_level, args.log_format)
        return run_demo(args.listen_address, log)
    cfg = _load(args.config_file)
    if cfg is None:
        return EXIT_CONFIG
    if args.command == "check-config":
        print(yaml.safe_dump(config.redacted(cfg), sort_keys=False), end="")
        return 0
    secrets = [s.reveal() for s in config.iter_secrets(cfg)]
    log = make_logger(args.log_level, args.log_format, secrets)
    from exporter.app import run  # imported late so that --version and errors stay fast

    return asyncio.run(run(cfg, args.listen_address, log))
