"""``python -m examples.chat --http HOST:PORT [--listen URL] [--seed URL]
[--cookie-file F] [--store URL]``: run a chat node until Ctrl-C.

Several nodes sharing one store (``sqlite:///abs/path.db``) and one cookie
form a cluster: start the first with ``--listen``, the others with ``--seed``
pointing at it. ``--heartbeat-interval``, ``--acceptable-pause`` and
``--down-after`` tune how fast a crashed node is declared down."""

import argparse
import gc
import signal
from pathlib import Path

import trio

import trouper
from trouper.web import open_gateway

from ._server import RoomDirectory, gateway_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m examples.chat", description=__doc__)
    parser.add_argument("--http", default="127.0.0.1:8000", metavar="HOST:PORT")
    parser.add_argument("--listen", action="append", default=[], metavar="URL")
    parser.add_argument("--seed", action="append", default=[], metavar="URL")
    parser.add_argument("--cookie-file", type=Path)
    parser.add_argument("--store", default="sqlite:///.chat/chat.db", metavar="URL")
    for flag in ("--heartbeat-interval", "--acceptable-pause", "--down-after"):
        parser.add_argument(flag, type=float, metavar="SECONDS")
    return parser


async def serve(args: argparse.Namespace) -> None:
    # A chat server holds many long-lived objects per connection; CPython's
    # default thresholds rescan them all often, and a full collection over
    # 10,000 connections stalls every delivery for a second or more. Collect
    # the young generation less often and the old one far less often.
    gc.set_threshold(50_000, 50, 1000)
    host, _, port = args.http.rpartition(":")
    cookie = args.cookie_file.read_bytes().strip() if args.cookie_file else None
    tuning = {
        option: value
        for option in ("heartbeat_interval", "acceptable_pause", "down_after")
        if (value := getattr(args, option)) is not None
    }
    async with trouper.open_node(
        listen=args.listen, seeds=args.seed, cookie=cookie, store=args.store, **tuning
    ) as node:
        if args.seed:  # meet the cluster before serving, so rooms are found, not duplicated
            try:
                await node.wait_for_members(2, timeout=10)
            except trouper.NodeDown:
                print("chat: no seed answered yet; serving alone for now", flush=True)
        directory = await node.spawn(RoomDirectory, name="chat-rooms")  # the node's store
        config = gateway_config(directory, host or "127.0.0.1", int(port))
        async with open_gateway(node, config) as gateway:
            if node.addresses:
                print(f"chat: node {node.id} listens on {' '.join(node.addresses)}", flush=True)
            print(f"chat: open {gateway.url}/ in a browser (Ctrl-C stops)", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break


def main() -> None:
    trio.run(serve, _parser().parse_args())


if __name__ == "__main__":
    main()
