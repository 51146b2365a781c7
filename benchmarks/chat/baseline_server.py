"""The baseline: a plain hypercorn WebSocket broadcast server, no trouper.

An ASGI app on hypercorn's trio worker; rooms are a dict of sets of send
channels, one bounded channel (and one sender task) per connection. Same
protocol subset as the chat example: ``join`` → ``joined``, ``say`` →
``message`` to every member, with per-room increasing ids.

``python -m benchmarks.chat.baseline_server [--http HOST:PORT]`` prints
``chat: open http://HOST:PORT/ ...`` like the example, then serves until a signal.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from typing import Any

import hypercorn
import hypercorn.trio
import trio

from ._limits import raise_nofile

QUEUE = 1000  # per-connection outbox; a full one drops the frame (like a full mailbox)

Channel = trio.MemorySendChannel[str]
rooms: dict[str, set[Channel]] = {}
next_id: dict[str, int] = {}
dropped = 0


def _deliver(room: str, text: str) -> None:
    global dropped
    for channel in list(rooms.get(room, ())):
        try:
            channel.send_nowait(text)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            dropped += 1


async def _pump(receive: trio.MemoryReceiveChannel[str], send: Any) -> None:
    async for text in receive:
        await send({"type": "websocket.send", "text": text})


def _on_text(text: str, users: dict[str, str], channel: Channel) -> None:
    try:
        frame = json.loads(text)
        kind, room = frame["type"], frame["room"]
    except (ValueError, KeyError, TypeError):
        channel.send_nowait(json.dumps({"type": "error", "reason": "invalid message"}))
        return
    if kind == "join":
        users[room] = str(frame["user"])
        rooms.setdefault(room, set()).add(channel)
        joined = {"type": "joined", "room": room, "history": [], "members": []}
        channel.send_nowait(json.dumps(joined))
    elif kind == "say" and room in users:
        id_ = next_id[room] = next_id.get(room, 0) + 1
        message = {
            "type": "message",
            "room": room,
            "id": id_,
            "user": users[room],
            "ts": time.time(),
            "text": str(frame["text"]),
        }
        _deliver(room, json.dumps(message))
    else:
        channel.send_nowait(json.dumps({"type": "error", "reason": "join first"}))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "websocket" or scope["path"] != "/ws":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})
        return
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    outbox, inbox = trio.open_memory_channel[str](QUEUE)
    users: dict[str, str] = {}
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, inbox, send)
            while True:
                event = await receive()
                if event["type"] != "websocket.receive":
                    break
                _on_text(event.get("text") or "", users, outbox)
            nursery.cancel_scope.cancel()
    finally:
        for room in users:
            rooms.get(room, set()).discard(outbox)
        outbox.close()


async def serve(bind: str) -> None:
    config = hypercorn.Config()
    config.bind = [bind]
    config.accesslog = None
    config.websocket_max_message_size = 64 * 1024
    config.backlog = 4096  # as trouper's gateway: a connect storm must not lose SYNs
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        binds = await nursery.start(
            lambda task_status: hypercorn.trio.serve(
                app, config, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        print(f"chat: open {binds[0]}/ in a browser (Ctrl-C stops)", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chat.baseline_server")
    parser.add_argument("--http", default="127.0.0.1:0", metavar="HOST:PORT")
    raise_nofile()
    trio.run(serve, parser.parse_args().http)


if __name__ == "__main__":
    main()
