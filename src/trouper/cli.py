"""The ``trouper`` command.

``trouper node`` runs one node until SIGTERM or SIGINT, then shuts it down
gracefully; it prints one JSON line (``{"node", "addresses", "pid"}``) once it
listens. ``trouper certs DIR`` writes a development CA and node certificates.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from ._errors import ConfigurationError, TrouperError
from ._open import open_node
from .transports import TLSConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trouper", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    node = sub.add_parser("node", help="run a node until SIGTERM or SIGINT")
    node.add_argument("--name", help="node id (default: generated)")
    node.add_argument("--listen", action="append", default=[], metavar="URL")
    node.add_argument("--seed", action="append", default=[], metavar="URL")
    node.add_argument(
        "--discovery", metavar="URL", help="redis://host:port/db?cluster=NAME or mdns://NAME"
    )
    node.add_argument("--cookie-file", required=True, type=Path)
    node.add_argument("--allow-spawn", action="append", default=[], metavar="MODULE:CLASS-GLOB")
    node.add_argument("--tls-cert", type=Path)
    node.add_argument("--tls-key", type=Path)
    node.add_argument("--tls-ca", type=Path)
    node.add_argument("--heartbeat-interval", type=float, default=0.5, metavar="SECONDS")
    node.add_argument("--acceptable-pause", type=float, default=2.0, metavar="SECONDS")
    node.add_argument("--down-after", type=float, default=4.5, metavar="SECONDS")
    certs = sub.add_parser("certs", help="write a development CA and node certificates")
    certs.add_argument("directory", type=Path)
    certs.add_argument("--name", action="append", default=[], help="node name (repeatable)")
    return parser


async def run_node(args: argparse.Namespace) -> None:
    cookie = args.cookie_file.read_bytes().strip()
    if not cookie:
        raise ConfigurationError(f"the cookie file {args.cookie_file} is empty")
    tls = None
    if args.tls_cert or args.tls_ca:
        tls = TLSConfig(certfile=args.tls_cert, keyfile=args.tls_key, cafile=args.tls_ca)
    async with open_node(
        args.name,
        listen=args.listen,
        seeds=args.seed,
        cookie=cookie,
        tls=tls,
        allow_spawn=args.allow_spawn,
        discovery=args.discovery,
        heartbeat_interval=args.heartbeat_interval,
        acceptable_pause=args.acceptable_pause,
        down_after=args.down_after,
    ) as node:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            ready = {"node": node.id, "addresses": list(node.addresses), "pid": os.getpid()}
            print(json.dumps(ready), flush=True)
            async for _ in signals:
                break


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command == "node":
            trio.run(run_node, args)
        elif args.command == "certs":
            from ._certs import make_dev_certs

            path = make_dev_certs(args.directory, args.name or ["node"])
            print(f"wrote a development CA and certificates to {path}")
    except TrouperError as exc:
        print(f"trouper: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
