"""The simulator's command line: ``python -m exporter.simulator [--port 0] ...``.

Serves demo data (drifting every ``--drift-interval`` seconds) in the foreground until
SIGINT/SIGTERM; the URL is printed first. ``--help`` lists the flags.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from exporter.simulator.core import Simulator

__all__ = ["main"]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.simulator",
        description="Run the ModelArts simulator in the foreground with drifting demo data.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080, help="0 picks a free port")
    parser.add_argument("--project-id", default="0123456789abcdef0123456789abcdef")
    parser.add_argument("--pools", default="pool-a,pool-b", help="comma-separated pool names")
    parser.add_argument("--ak", default="SIMULATORACCESSKEY01", help="access key")
    parser.add_argument("--sk", default="simulator-secret-key", help="secret key")
    parser.add_argument("--security-token", help="make the AK temporary: require this token")
    parser.add_argument("--iam-domain", help="IAM account (domain) name")
    parser.add_argument("--iam-user", help="IAM user name")
    parser.add_argument("--iam-password", help="IAM user password")
    parser.add_argument("--token-lifetime", type=float, default=86400.0, help="seconds")
    parser.add_argument("--drift-interval", type=float, default=5.0, help="seconds; 0 = off")
    parser.add_argument("--seed", type=int, help="random seed for demo data and drift")
    args = parser.parse_args(argv)
    iam = (args.iam_domain, args.iam_user, args.iam_password)
    if any(iam) and not all(iam):
        parser.error("--iam-domain, --iam-user and --iam-password go together")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Serve demo data until SIGINT/SIGTERM; prints the URL first."""
    args = _parse_args(argv)
    pools = [p.strip() for p in args.pools.split(",") if p.strip()]
    rng = random.Random(args.seed)
    iam_users = {}
    if args.iam_user:
        iam_users[(args.iam_domain, args.iam_user)] = args.iam_password
    simulator = Simulator(
        access_keys={args.ak: args.sk},
        security_tokens={args.ak: args.security_token} if args.security_token else None,
        iam_users=iam_users,
        token_lifetime_seconds=args.token_lifetime,
        host=args.host,
        port=args.port,
    )
    simulator.seed_demo(args.project_id, pools, rng)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            simulator.start()
        except OSError as exc:
            print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(f"ModelArts simulator listening on {simulator.url}", flush=True)
        print(f"project {args.project_id}, pools {','.join(pools)}, AK {args.ak}", flush=True)
        interval = args.drift_interval if args.drift_interval > 0 else None
        while not stop.wait(interval):
            simulator.drift(rng)
    finally:
        simulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
