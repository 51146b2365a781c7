"""``python -m examples.chat --http HOST:PORT [--listen URL] [--seed URL]
[--cookie-file F] [--store URL]``: run a chat node until Ctrl-C."""

import argparse
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
    return parser


async def serve(args: argparse.Namespace) -> None:
    host, _, port = args.http.rpartition(":")
    cookie = args.cookie_file.read_bytes().strip() if args.cookie_file else None
    async with trouper.open_node(listen=args.listen, seeds=args.seed, cookie=cookie) as node:
        directory = await node.spawn(RoomDirectory, args.store, name="chat-rooms")
        config = gateway_config(directory, host or "127.0.0.1", int(port))
        async with open_gateway(node, config) as gateway:
            print(f"chat: open {gateway.url}/ in a browser (Ctrl-C stops)", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break


def main() -> None:
    trio.run(serve, _parser().parse_args())


if __name__ == "__main__":
    main()
