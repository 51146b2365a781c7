"""The ``trouper`` command.

``trouper node`` runs one node until SIGTERM or SIGINT, then shuts it down
gracefully; it prints one JSON line (``{"node", "addresses", "pid"}``) once it
listens. SIGHUP reloads its TLS certificates for new connections (live links
stay) and prints ``{"tls_reloaded": SHA256}``, or ``{"tls_reload_error":
WHY}`` when the files are bad (the old certificates stay in use). Logs go to
stderr, as text or (``--log-format json``, or ``TROUPER_LOG=json``) one JSON
object per line.
``trouper certs DIR`` writes a development CA and node certificates.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from ._errors import ConfigurationError, TrouperError
from ._open import open_node
from .observability import configure_logging
from .observability._logformat import add_log_arguments
from .runtime import Node
from .transports import TLSConfig

log = logging.getLogger("trouper.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trouper", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    node = sub.add_parser("node", help="run a node until SIGTERM or SIGINT")
    add_log_arguments(node)
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
    node.add_argument(
        "--tls-dev",
        action="store_true",
        help="TLSConfig.dev(): an ephemeral self-signed certificate (development only)",
    )
    node.add_argument("--heartbeat-interval", type=float, default=0.5, metavar="SECONDS")
    node.add_argument("--acceptable-pause", type=float, default=2.0, metavar="SECONDS")
    node.add_argument("--down-after", type=float, default=4.5, metavar="SECONDS")
    certs = sub.add_parser("certs", help="write a development CA and node certificates")
    certs.add_argument("directory", type=Path)
    certs.add_argument("--name", action="append", default=[], help="node name (repeatable)")
    certs.add_argument(
        "--keep-ca", action="store_true", help="sign with the CA already in DIR (rotation)"
    )
    return parser


async def run_node(args: argparse.Namespace) -> None:
    cookie = args.cookie_file.read_bytes().strip()
    if not cookie:
        raise ConfigurationError(f"the cookie file {args.cookie_file} is empty")
    tls = None
    if args.tls_dev:
        if args.tls_cert or args.tls_key or args.tls_ca:
            raise ConfigurationError("--tls-dev takes no --tls-cert, --tls-key or --tls-ca")
        tls = TLSConfig.dev()
    elif args.tls_cert or args.tls_ca:
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
        signums = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        with trio.open_signal_receiver(*signums) as signals:
            ready = {"node": node.id, "addresses": list(node.addresses), "pid": os.getpid()}
            print(json.dumps(ready), flush=True)
            log.info("node %s listening on %s", node.id, ", ".join(node.addresses) or "nothing")
            async for signum in signals:
                if signum != signal.SIGHUP:
                    break
                await _reload_tls(node)


async def _reload_tls(node: Node) -> None:
    """SIGHUP: rotate certificates; a failure is reported, never fatal."""
    try:
        fingerprint = await node.reload_tls()
    except TrouperError as exc:
        log.warning("TLS reload failed, the old certificates stay: %s", exc)
        print(json.dumps({"tls_reload_error": str(exc)}), flush=True)
        return
    print(json.dumps({"tls_reloaded": fingerprint}), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command == "node":
            configure_logging(args.log_format, args.log_level)
            trio.run(run_node, args)
        elif args.command == "certs":
            from ._certs import make_dev_certs

            path = make_dev_certs(args.directory, args.name or ["node"], keep_ca=args.keep_ca)
            print(f"wrote a development CA and certificates to {path}")
    except TrouperError as exc:
        print(f"trouper: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
