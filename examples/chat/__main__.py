"""``python -m examples.chat --http HOST:PORT [--listen URL] [--seed URL]
[--cookie-file F] [--store URL] [--jwt-secret-file F]``: run a chat node
until Ctrl-C. ``python -m examples.chat token NAME --jwt-secret-file F``
prints a token for NAME (JWT mode).

Several nodes sharing one store (``sqlite:///abs/path.db``) and one cookie
form a cluster: start the first with ``--listen``, the others with ``--seed``
pointing at it. ``--heartbeat-interval``, ``--acceptable-pause`` and
``--down-after`` tune how fast a crashed node is declared down."""

import argparse
import gc
import signal
import sys
from pathlib import Path

import trio

import trouper
from trouper.web import open_gateway

from ._auth import issue_token, read_secret
from ._room import PASSIVATE_AFTER
from ._server import (
    IDLE_TIMEOUT,
    MAX_ROOMS_PER_CONNECTION,
    MAX_ROOMS_PER_NODE,
    ChatSettings,
    RoomDirectory,
    gateway_config,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m examples.chat", description=__doc__)
    parser.add_argument("--http", default="127.0.0.1:8000", metavar="HOST:PORT")
    parser.add_argument("--listen", action="append", default=[], metavar="URL")
    parser.add_argument("--seed", action="append", default=[], metavar="URL")
    parser.add_argument("--cookie-file", type=Path)
    parser.add_argument("--store", default="sqlite:///.chat/chat.db", metavar="URL")
    for flag in ("--heartbeat-interval", "--acceptable-pause", "--down-after"):
        parser.add_argument(flag, type=float, metavar="SECONDS")
    parser.add_argument("--jwt-secret-file", type=Path, metavar="FILE")
    parser.add_argument("--max-rooms", type=int, default=MAX_ROOMS_PER_NODE, metavar="N")
    parser.add_argument(
        "--max-rooms-per-connection", type=int, default=MAX_ROOMS_PER_CONNECTION, metavar="N"
    )
    parser.add_argument("--passivate-after", type=float, default=PASSIVATE_AFTER, metavar="SECONDS")
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT, metavar="SECONDS")
    return parser


def _token_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.chat token", description="Print an HS256 token for NAME."
    )
    parser.add_argument("name")
    parser.add_argument("--jwt-secret-file", type=Path, required=True, metavar="FILE")
    parser.add_argument("--ttl", type=float, default=12 * 3600, metavar="SECONDS")
    return parser


async def serve(args: argparse.Namespace) -> None:
    # A chat server holds many long-lived objects per connection; CPython's
    # default thresholds rescan them all often, and a full collection over
    # 10,000 connections stalls every delivery for a second or more. Collect
    # the young generation less often and the old one far less often.
    gc.set_threshold(50_000, 50, 1000)
    host, _, port = args.http.rpartition(":")
    cookie = args.cookie_file.read_bytes().strip() if args.cookie_file else None
    secret = read_secret(args.jwt_secret_file) if args.jwt_secret_file else None
    settings = ChatSettings(args.max_rooms_per_connection, args.idle_timeout, secret)
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
        directory = await node.spawn(  # the node's store
            RoomDirectory,
            None,
            max_rooms=args.max_rooms,
            passivate_after=args.passivate_after,
            name="chat-rooms",
        )
        config = gateway_config(directory, host or "127.0.0.1", int(port), settings)
        async with open_gateway(node, config) as gateway:
            if node.addresses:
                print(f"chat: node {node.id} listens on {' '.join(node.addresses)}", flush=True)
            if secret is None:
                print(
                    "chat: development mode: user names are NOT authenticated"
                    " (anyone can join under any free name; see --jwt-secret-file)",
                    flush=True,
                )
            else:
                print(
                    "chat: JWT mode: users come from HS256 tokens; open"
                    f" {gateway.url}/#token=TOKEN (python -m examples.chat token NAME ...)",
                    flush=True,
                )
            print(f"chat: open {gateway.url}/ in a browser (Ctrl-C stops)", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break


def main() -> None:
    if sys.argv[1:2] == ["token"]:
        args = _token_parser().parse_args(sys.argv[2:])
        print(issue_token(args.name, read_secret(args.jwt_secret_file), args.ttl))
        return
    trio.run(serve, _parser().parse_args())


if __name__ == "__main__":
    main()
