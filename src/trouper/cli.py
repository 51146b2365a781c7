"""The ``trouper`` command.

``trouper node`` runs one node until SIGTERM or SIGINT, then shuts it down
gracefully; it prints one JSON line (``{"node", "addresses", "pid"}``) once it
listens. SIGHUP reloads its TLS certificates for new connections (live links
stay) and prints ``{"tls_reloaded": SHA256}``, or ``{"tls_reload_error":
WHY}`` when the files are bad (the old certificates stay in use). Logs go to
stderr, as text or (``--log-format json``, or ``TROUPER_LOG=json``) one JSON
object per line.
``--data-dir`` (default ``.trouper``) holds the node's files: its default
store is ``sqlite:///DATA_DIR/store.db`` unless ``--store URL`` says
otherwise (created on first use only).
``trouper certs DIR`` writes a development CA and node certificates.
``trouper ps``, ``tree``, ``members`` and ``top`` read a node's admin
endpoint (``trouper node --admin HOST:PORT``; see docs/observability.md).
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
from typing import Any

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
    parser.add_argument(
        "--version", action="version", version=f"trouper {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    node = sub.add_parser("node", help="run a node until SIGTERM or SIGINT")
    add_log_arguments(node)
    node.add_argument("--name", help="node id (default: generated)")
    node.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="URL",
        help="listen for other nodes at URL, e.g. tcp://0.0.0.0:7000 (repeatable)",
    )
    node.add_argument(
        "--seed",
        action="append",
        default=[],
        metavar="URL",
        help="dial the node at URL to join its cluster (repeatable)",
    )
    node.add_argument(
        "--discovery", metavar="URL", help="redis://host:port/db?cluster=NAME or mdns://NAME"
    )
    node.add_argument(
        "--cookie-file",
        required=True,
        type=Path,
        metavar="PATH",
        help="file holding the cluster's shared secret (every node must have the same)",
    )
    node.add_argument(
        "--allow-spawn",
        action="append",
        default=[],
        metavar="MODULE:CLASS-GLOB",
        help="actor classes other nodes may spawn here (repeatable)",
    )
    node.add_argument("--tls-cert", type=Path, metavar="PATH", help="this node's certificate")
    node.add_argument("--tls-key", type=Path, metavar="PATH", help="its private key")
    node.add_argument("--tls-ca", type=Path, metavar="PATH", help="the CA that signs the nodes")
    node.add_argument(
        "--tls-dev",
        action="store_true",
        help="TLSConfig.dev(): an ephemeral self-signed certificate (development only)",
    )
    node.add_argument(
        "--heartbeat-interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="how often to heartbeat each peer (default 0.5)",
    )
    node.add_argument(
        "--acceptable-pause",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="a silence the failure detector forgives (default 2.0)",
    )
    node.add_argument(
        "--down-after",
        type=float,
        default=4.5,
        metavar="SECONDS",
        help="a peer silent this long is down (default 4.5)",
    )
    node.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".trouper"),
        metavar="DIR",
        help="the node's files (default .trouper); its default store is DIR/store.db",
    )
    node.add_argument(
        "--store",
        metavar="URL",
        help="the node's default store (default sqlite:///DATA_DIR/store.db; see docs/stores.md)",
    )
    node.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help="serve the admin endpoint (metrics, health, JSON API) at HOST:PORT (port 0: any)",
    )
    node.add_argument(
        "--admin-token-file",
        type=Path,
        metavar="PATH",
        help="file holding the admin token that stop, kill and restart require",
    )
    certs = sub.add_parser("certs", help="write a development CA and node certificates")
    certs.add_argument("directory", type=Path, help="where to write the files")
    certs.add_argument("--name", action="append", default=[], help="node name (repeatable)")
    certs.add_argument(
        "--keep-ca", action="store_true", help="sign with the CA already in DIR (rotation)"
    )
    _client_commands(sub)
    return parser


def _client_commands(sub: Any) -> None:
    about = {
        "ps": "list a node's actors (path, class, state, restarts, mailbox)",
        "tree": "draw a node's supervision tree",
        "members": "list the cluster's members (status, phi, RTT)",
        "top": "a live view of a node's actor classes, refreshed in place",
    }
    for name, text in about.items():
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument(
            "--admin",
            required=True,
            metavar="URL",
            help="the admin endpoint, e.g. http://127.0.0.1:9100 (or HOST:PORT)",
        )
        cmd.add_argument(
            "--token-file", type=Path, metavar="PATH", help="file holding the admin token"
        )
        cmd.add_argument(
            "--node", metavar="ID", help="ask about this node of the cluster (default: its own)"
        )
        if name == "ps":
            cmd.add_argument("--system", action="store_true", help="include /system actors")
        elif name == "tree":
            cmd.add_argument("--path", default="/", help="draw the tree under PATH (default: /)")
            cmd.add_argument("--depth", type=int, default=16, help="levels to draw (default 16)")
        elif name == "top":
            cmd.add_argument(
                "--interval",
                type=float,
                default=2.0,
                metavar="SECONDS",
                help="seconds between refreshes (default 2)",
            )
            cmd.add_argument(
                "--iterations",
                type=int,
                default=0,
                metavar="N",
                help="stop after N refreshes (default 0: until ^C)",
            )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trouper")
    except PackageNotFoundError:
        from . import __version__

        return __version__


def _read_secret(path: Path, what: str) -> bytes:
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if not secret:
        raise ConfigurationError(f"the {what} file {path} is empty")
    return secret


def default_store(data_dir: Path) -> str:
    """The default store of ``trouper node``: an sqlite file in its data directory."""
    return f"sqlite:///{(data_dir / 'store.db').absolute()}"  # absolute: four slashes


async def run_node(args: argparse.Namespace) -> None:
    cookie = await trio.to_thread.run_sync(_read_secret, args.cookie_file, "cookie")
    store = args.store or await trio.to_thread.run_sync(default_store, args.data_dir)
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
        admin=args.admin,
        admin_token_file=args.admin_token_file,
        store=store,
    ) as node:
        signums = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        with trio.open_signal_receiver(*signums) as signals:
            ready: dict[str, Any] = {
                "node": node.id,
                "addresses": list(node.addresses),
                "pid": os.getpid(),
            }
            if node.admin_address is not None:
                ready["admin"] = f"http://{node.admin_address}"
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
        else:
            from .observability._cli import run_client

            run_client(args.command, args)
    except TrouperError as exc:
        print(f"trouper: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        if args.command != "top":
            raise
        raise SystemExit(130) from None
