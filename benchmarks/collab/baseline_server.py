"""The baseline: pycrdt-websocket's own server, no trouper.

``pycrdt.websocket.ASGIServer(WebsocketServer())`` served by hypercorn's trio
worker; the room is the URL path (``ws://HOST:PORT/bench``). Its ``YRoom``
applies each client update to the room's ``Doc`` and broadcasts the
transaction's update (re-encoded by yrs, not the client's bytes) to every
client of the room, the sender included. It keeps nothing on disk (no
``ystore``): the trouper server persists every update before acknowledging it.

``python -m benchmarks.collab.baseline_server [--http HOST:PORT]`` prints one
JSON line ``{"http": "http://HOST:PORT", "pid": N}`` once serving, then serves
until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal

import hypercorn
import hypercorn.trio
import trio
from pycrdt.websocket import ASGIServer, WebsocketServer

from benchmarks.chat._limits import raise_nofile


async def serve(bind: str) -> None:
    config = hypercorn.Config()
    config.bind = [bind]
    config.accesslog = None
    config.websocket_max_message_size = 16 << 20
    config.backlog = 4096
    websocket_server = WebsocketServer(log=logging.getLogger("baseline"))
    app = ASGIServer(websocket_server)
    async with websocket_server, trio.open_nursery() as nursery:
        stop = trio.Event()
        binds = await nursery.start(
            lambda task_status: hypercorn.trio.serve(
                app,  # type: ignore[arg-type]
                config,
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        print(json.dumps({"http": binds[0], "pid": os.getpid()}), flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        stop.set()
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.collab.baseline_server")
    parser.add_argument("--http", default="127.0.0.1:0", metavar="HOST:PORT")
    raise_nofile()
    logging.basicConfig(level=logging.WARNING)
    trio.run(serve, parser.parse_args().http)


if __name__ == "__main__":
    main()
