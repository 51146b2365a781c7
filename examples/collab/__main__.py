"""``python -m examples.collab --http HOST:PORT [--listen URL] [--seed URL]
[--cookie-file F] [--store URL] [--sessions-store URL]``: run a node of the
collaborative editor until SIGINT/SIGTERM.

Once serving it prints ONE JSON line on stdout, ``{"node": id, "http":
"http://HOST:PORT", "addresses": [...], "pid": N}`` (scripts and the
benchmark read it), then what it says for people on stderr.

Several nodes sharing one store (``sqlite:///abs/path.db`` or
``postgresql://...``) and one cookie form a cluster: start the first with
``--listen``, the others with ``--seed`` pointing at it; a node started with
``--seed`` waits to meet the cluster before serving, so documents are found,
not duplicated. The page (``static/bundle.js``) is built by ``make
collab-assets``: the server never builds anything.
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import trio

import trouper

from ._app import BUNDLE, CollabSettings, open_collab

DEFAULT_STORE = "sqlite:///.collab/collab.db"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m examples.collab", description=__doc__)
    parser.add_argument("--http", default="127.0.0.1:8000", metavar="HOST:PORT")
    parser.add_argument("--listen", action="append", default=[], metavar="URL")
    parser.add_argument("--seed", action="append", default=[], metavar="URL")
    parser.add_argument("--cookie-file", type=Path)
    parser.add_argument("--store", default=DEFAULT_STORE, metavar="URL")
    parser.add_argument("--sessions-store", default=None, metavar="URL")
    parser.add_argument("--passivate-after", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--session-ttl", type=float, default=None, metavar="SECONDS")
    for flag in ("--heartbeat-interval", "--acceptable-pause", "--down-after"):
        parser.add_argument(flag, type=float, metavar="SECONDS")
    return parser


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)


async def serve(args: argparse.Namespace) -> None:
    host, _, port = args.http.rpartition(":")
    cookie = args.cookie_file.read_bytes().strip() if args.cookie_file else None
    for url in (args.store, args.sessions_store):
        if url:
            _ensure_sqlite_dir(url)
    tuning = {
        option: value
        for option in ("heartbeat_interval", "acceptable_pause", "down_after")
        if (value := getattr(args, option)) is not None
    }
    settings = CollabSettings(
        host=host or "127.0.0.1",
        port=int(port),
        sessions_store_url=args.sessions_store,
        passivate_after=args.passivate_after,
        session_ttl=args.session_ttl,
    )
    async with trouper.open_node(
        listen=args.listen, seeds=args.seed, cookie=cookie, store=args.store, **tuning
    ) as node:
        if args.seed:  # meet the cluster first, so documents are found, not duplicated
            try:
                await node.wait_for_members(2, timeout=10)
            except trouper.NodeDown:
                print("collab: no seed answered yet; serving alone for now", file=sys.stderr)
        async with open_collab(node, settings) as gateway:
            line = {
                "node": node.id,
                "http": gateway.url,
                "addresses": list(node.addresses),
                "pid": os.getpid(),
            }
            print(json.dumps(line), flush=True)
            if not BUNDLE.exists():
                print(f"collab: {BUNDLE} is missing: run `make collab-assets`", file=sys.stderr)
            print(f"collab: open {gateway.url}/ in two browsers (Ctrl-C stops)", file=sys.stderr)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break


def main() -> None:
    trio.run(serve, _parser().parse_args())


if __name__ == "__main__":
    main()
