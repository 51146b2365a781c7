"""The servers of ``make bench-http``, one process each:
``python -m benchmarks.http._servers KIND PORT``.

* ``trouper``: a node with a web gateway on its own HTTP/1.1 path: ``GET
  /hello`` (a route answering a constant) and ``GET /api/users/{id}`` (a
  route asking an actor);
* ``hypercorn``: a plain ASGI hello on hypercorn's trio worker;
* ``uvicorn``: the same app on uvicorn with httptools on asyncio.

Each prints ``READY`` once it serves, and runs until killed.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from ._procs import raise_nofile

HELLO = b"hello, world\n"


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            await send({"type": event["type"] + ".complete"})
            if event["type"] == "lifespan.shutdown":
                return
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(HELLO))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": HELLO})


def ready() -> None:
    print("READY", flush=True)


def run_trouper(port: int) -> None:
    from ._trouper_app import serve

    serve(port, HELLO, ready)


def run_hypercorn(port: int) -> None:
    import hypercorn
    import hypercorn.trio
    import trio

    config = hypercorn.Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.backlog = 4096

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(hypercorn.trio.serve, hello_app, config)
            ready()

    trio.run(main)


def run_uvicorn(port: int) -> None:
    import asyncio

    import uvicorn

    config = uvicorn.Config(
        hello_app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, no event
            await asyncio.sleep(0.01)
        ready()
        await task

    asyncio.run(main())


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    raise_nofile()
    gc.freeze()
    {"trouper": run_trouper, "hypercorn": run_hypercorn, "uvicorn": run_uvicorn}[kind](port)
