"""Command line: Prometheus-style flags and the ``check-config``, ``probe`` and ``demo``
sub-commands.

::

    modelarts-exporter [--config.file=config.yaml] [--web.listen-address=:10072]
                       [--log.level=info] [--log.format=json|console] [--version]
                       [--shard=0 | --shard.from-hostname] [--total-shards=1]
                       [--web.config.file=web.yml]   # TLS and basic auth (exporter.webconfig)
    modelarts-exporter check-config [--config.file=…]   # print effective config, exit 0 or 2
    modelarts-exporter probe [--config.file=…]          # one request per API and item, exit 0/1/2
    modelarts-exporter demo [--web.listen-address=…]    # built-in simulator + exporter

Exit codes: 0 stopped cleanly, 1 runtime failure (e.g. the port is taken; for ``probe``, a
request not answered 2xx), 2 bad config or flags. The demo reads no config file, so it
refuses ``--config.file``.

SIGHUP reloads ``--config.file``; so does POST /-/reload with ``--web.enable-lifecycle``
(403 without). A file that fails to load is logged and changes nothing.

Sharding (``exporter.sharding``): n exporters with ``--shard=0..n-1 --total-shards=n`` split
the pools between them; ``--shard.from-hostname`` takes the shard from a StatefulSet pod's
hostname (``modelarts-exporter-2`` → 2). The sub-commands ignore these flags.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, TextIO

import yaml
from structlog.typing import FilteringBoundLogger

from exporter import __version__, config
from exporter.errors import ConfigError
from exporter.logs import LEVELS, make_logger
from exporter.memory import fix_mmap_threshold
from exporter.sharding import Shard, ordinal_from_hostname

if TYPE_CHECKING:
    from exporter.webconfig import WebConfigFile

__all__ = ["DEFAULT_LISTEN_ADDRESS", "main"]

DEFAULT_PORT = 10072
DEFAULT_LISTEN_ADDRESS = f":{DEFAULT_PORT}"
EXIT_CONFIG = 2
DEFAULT_CONFIG_FILE = "config.yaml"


def _listen_address(text: str) -> str:
    """``--web.listen-address`` as given, once it parses (else a usage error, exit 2)."""
    from exporter.server import parse_listen_address

    try:
        parse_listen_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _common(
    suppress: bool, *, config_file: bool = True, listen: bool = True
) -> argparse.ArgumentParser:
    """Flags accepted before and after the sub-command; a sub-command that does not use
    the config file or does not listen leaves that flag out."""
    parser = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    if config_file:
        # None when not given (DEFAULT_CONFIG_FILE is then read): the demo refuses it given.
        parser.add_argument(
            "--config.file",
            dest="config_file",
            metavar="PATH",
            default=default,
            help=f"configuration file (default: {DEFAULT_CONFIG_FILE})",
        )
    if listen:
        parser.add_argument(
            "--web.listen-address",
            dest="listen_address",
            metavar="[HOST]:PORT",
            type=_listen_address,
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


def _web_config_flag(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        default=default,
        help="TLS and basic auth for every endpoint, in the format of Prometheus' "
        "exporter-toolkit; re-read when it changes (default: none, plain HTTP). "
        "check-config checks it too",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelarts-exporter",
        description="Prometheus exporter for Huawei Cloud ModelArts pools and resource specs.",
        parents=[_common(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="reload the configuration on POST /-/reload, as SIGHUP does (default: off, "
        "POST /-/reload answers 403)",
    )
    _web_config_flag(parser, None)
    sharding = parser.add_argument_group(
        "sharding", "split the pools between several exporters, as kube-state-metrics does"
    )
    index = sharding.add_mutually_exclusive_group()
    index.add_argument(
        "--shard",
        type=int,
        default=0,
        metavar="I",
        help="this exporter's shard, 0 <= I < --total-shards (default: 0)",
    )
    index.add_argument(
        "--shard.from-hostname",
        dest="shard_from_hostname",
        action="store_true",
        help="take the shard from the hostname's trailing -<ordinal>, as in the StatefulSet "
        "pod modelarts-exporter-2 (needs --total-shards)",
    )
    sharding.add_argument(
        "--total-shards",
        type=int,
        default=None,
        metavar="N",
        help="number of shards; resource specs are polled by shard 0 (default: 1)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check-config",
        parents=[_common(suppress=True)],
        help="validate the configuration (and --web.config.file, when given), print it with "
        "secrets masked; exit 0 or 2",
    )
    _web_config_flag(check, argparse.SUPPRESS)
    commands.add_parser(
        "probe",
        parents=[_common(suppress=True, listen=False)],
        help="send each target one request per API and item (never a retry; a 401/403 stops "
        "the target), print a table of the answers and what to do; exit 0 when all are 2xx, "
        "1 if not, 2 on a bad config",
    )
    commands.add_parser(
        "demo",
        parents=[_common(suppress=True, config_file=False)],
        help="run the exporter against its built-in ModelArts simulator (no config file)",
    )
    return parser


def _load(path: str) -> config.Config | None:
    try:
        return config.load(path)
    except ConfigError as exc:
        print(f"modelarts-exporter: invalid configuration: {exc}", file=sys.stderr)
        return None


def _invalid_web_config(error: ConfigError) -> None:
    print(f"modelarts-exporter: invalid web configuration: {error}", file=sys.stderr)


def _check_config(path: str, web_path: str | None) -> int:
    """Print the config, and the web config when given, as read and masked; 0 or 2."""
    cfg = _load(path)
    if cfg is None:
        return EXIT_CONFIG
    documents: list[object] = [config.redacted(cfg)]
    if web_path is not None:
        from exporter import webconfig

        try:
            documents.append(webconfig.redacted(webconfig.load(web_path).config))
        except ConfigError as exc:
            _invalid_web_config(exc)
            return EXIT_CONFIG
    print(yaml.safe_dump_all(documents, sort_keys=False), end="")
    return 0


def _probe(path: str, level: str, fmt: str | None) -> int:
    """Probe every target of the config at ``path`` (``exporter.probe``); 0, 1 or 2."""
    cfg = _load(path)
    if cfg is None:
        return EXIT_CONFIG
    # The table goes to stdout; the few log lines (credential reads) to stderr.
    log = _logger(level, fmt, cfg, stream=sys.stderr)
    from exporter.probe import run_probe  # imported late, as exporter.app is

    return run_probe(cfg, log)


def _web_config(path: str | None, log: FilteringBoundLogger) -> WebConfigFile | None:
    """The web config to serve with, None without the flag; exit 2 when it is invalid."""
    if path is None:
        return None
    from exporter.webconfig import WebConfigFile  # imported late, as exporter.app is

    try:
        return WebConfigFile(path, log)
    except ConfigError as exc:
        _invalid_web_config(exc)
        raise SystemExit(EXIT_CONFIG) from None


def _logger(
    level: str, fmt: str | None, cfg: config.Config, stream: TextIO | None = None
) -> FilteringBoundLogger:
    """A logger that masks ``cfg``'s secrets; a reload makes one for the new config."""
    secrets = [s.reveal() for s in config.iter_secrets(cfg)]
    return make_logger(level, fmt, secrets, stream=stream)


def _shard(
    parser: argparse.ArgumentParser, args: argparse.Namespace, hostname: Callable[[], str]
) -> Shard:
    """The shard the flags name; a usage error (exit 2) when they name none."""
    total = 1 if args.total_shards is None else args.total_shards
    if not args.shard_from_hostname:
        try:
            return Shard(args.shard, total)
        except ValueError as exc:
            parser.error(f"--shard={args.shard} --total-shards={total}: {exc}")
    if args.total_shards is None:
        parser.error("--shard.from-hostname needs --total-shards")
    name = hostname()
    try:
        index = ordinal_from_hostname(name)
    except ValueError as exc:
        parser.error(f"--shard.from-hostname: {exc}")
    try:
        return Shard(index, total)
    except ValueError as exc:
        parser.error(f"--shard.from-hostname --total-shards={total}: hostname {name!r}: {exc}")


def main(
    argv: Sequence[str] | None = None, *, hostname: Callable[[], str] = socket.gethostname
) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config_file = args.config_file or DEFAULT_CONFIG_FILE
    # Long-running commands: big freed buffers must not stay in the heap (exporter.memory).
    mmap_threshold_fixed = args.command not in ("check-config", "probe") and fix_mmap_threshold()
    if args.command == "demo":
        if args.config_file is not None:
            parser.error("demo: --config.file is not read: the demo polls its own simulator")
        from exporter.demo import run_demo  # the simulator is loaded only for the demo

        log = make_logger(args.log_level, args.log_format)
        return run_demo(args.listen_address, log)
    if args.command == "check-config":
        return _check_config(config_file, args.web_config_file)
    if args.command == "probe":
        return _probe(config_file, args.log_level, args.log_format)
    shard = _shard(parser, args, hostname)
    # A SIGHUP (reload) before the exporter handles it must not end the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    cfg = _load(config_file)
    if cfg is None:
        return EXIT_CONFIG
    log = _logger(args.log_level, args.log_format, cfg)
    log.debug("malloc_tuned", mmap_threshold_fixed=mmap_threshold_fixed)
    web = _web_config(args.web_config_file, log)
    from exporter.app import run  # imported late so that --version and errors stay fast

    code = asyncio.run(
        run(
            cfg,
            args.listen_address,
            log,
            shard=shard,
            web=web,
            config_file=config_file,
            enable_lifecycle=args.enable_lifecycle,
            log_for=partial(_logger, args.log_level, args.log_format),
        )
    )
    # Exiting: a late signal must neither kill the process nor raise.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    return code
