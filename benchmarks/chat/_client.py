"""One load-generator process: holds WebSocket clients, sends, measures.

``python -m benchmarks.chat._client URL PROC PROCS CONNECTIONS ROOMS CONCURRENCY``
holds clients ``i = PROC, PROC + PROCS, ...`` (client ``i`` joins room
``(i // PROCS) % ROOMS``), prints ``{"event": "connected", ...}``, then obeys
the JSON commands it reads from stdin, one a line: ``phase`` sends this
process's share of a phase (``{"event": "sent"}`` when done), ``report``
prints what its members received since (messages arriving late still count).
Sent texts are ``PROC:PHASE:SEQ WALLTIME``: each receiver computes the
delivery latency from the (``time.time()``) send time in the text.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections import Counter
from typing import Any

import msgspec
import trio
import trio_websocket

from ._limits import raise_nofile

_decode = msgspec.json.decode


class Member:
    def __init__(self, room: str) -> None:
        self.room = room
        self.ws: trio_websocket.WebSocketConnection | None = None
        self.seen: set[str] = set()

    @property
    def open(self) -> bool:
        return self.ws is not None and not self.ws.closed


class Phase:
    """What the members of this process received during one phase."""

    def __init__(self, number: int) -> None:
        self.prefix = f":{number}:"
        self.hist: Counter[int] = Counter()  # 0.1 ms buckets of delivery latency
        self.received: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.ids: dict[str, dict[int, str]] = {}
        self.tag_ids: dict[str, int] = {}
        self.duplicates = self.conflicts = self.stray = self.send_errors = 0

    def on_message(self, member: Member, frame: dict[str, Any], now: float) -> None:
        tag, _, sent = frame["text"].partition(" ")
        if self.prefix not in tag:
            self.stray += 1
            return
        self.hist[int((now - float(sent)) * 10_000)] += 1
        if tag in member.seen:
            self.duplicates += 1
            return
        member.seen.add(tag)
        self.received[member.room] += 1
        id_ = frame["id"]
        known = self.ids.setdefault(member.room, {}).setdefault(id_, tag)
        if known != tag or self.tag_ids.setdefault(tag, id_) != id_:
            self.conflicts += 1

    def report(self, members: list[Member]) -> dict[str, Any]:
        held: Counter[str] = Counter(m.room for m in members if m.open)
        return {
            "event": "report",
            "hist": {str(k): v for k, v in self.hist.items()},
            "received": self.received,
            "sent": self.sent,
            "members": held,
            "held": sum(held.values()),
            "ids": {room: {str(k): v for k, v in ids.items()} for room, ids in self.ids.items()},
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "stray": self.stray,
            "send_errors": self.send_errors,
        }


class Client:
    def __init__(self, argv: list[str]) -> None:
        self.url = argv[0]
        self.proc, self.procs, connections, rooms = (int(a) for a in argv[1:5])
        self.limiter = trio.CapacityLimiter(int(argv[5]))
        indices = range(self.proc, connections, self.procs)
        self.members = [Member(f"room-{(i // self.procs) % rooms}") for i in indices]
        self.phase = Phase(-1)
        self.failed = 0

    async def _connect(self, nursery: trio.Nursery, member: Member, number: int) -> None:
        user = f"u{self.proc}-{number}"
        for attempt in range(5):
            async with self.limiter:
                try:
                    with trio.fail_after(120):
                        ws = await trio_websocket.connect_websocket_url(
                            nursery, self.url, max_message_size=1 << 22
                        )
                        join = {"type": "join", "room": member.room, "user": user}
                        await ws.send_message(json.dumps(join))
                        while _decode(await ws.get_message())["type"] != "joined":
                            pass
                    member.ws = ws
                    nursery.start_soon(self._receive, member)
                    return
                except (OSError, trio.TooSlowError, trio_websocket.HandshakeError) as exc:
                    error = exc
                except trio_websocket.ConnectionClosed as exc:
                    error = exc
            await trio.sleep(0.5 * (attempt + 1))
        self.failed += 1
        print(f"chat client {self.proc}: {user} failed: {error!r}", file=sys.stderr)

    async def _receive(self, member: Member) -> None:
        assert member.ws is not None
        try:
            while True:
                text = await member.ws.get_message()
                frame = _decode(text)
                if frame["type"] == "message":
                    self.phase.on_message(member, frame, time.time())
        except trio_websocket.ConnectionClosed:
            pass

    async def _say(self, member: Member, text: str, phase: Phase) -> None:
        assert member.ws is not None
        try:
            await member.ws.send_message(
                json.dumps({"type": "say", "room": member.room, "text": text})
            )
        except trio_websocket.ConnectionClosed:
            phase.send_errors += 1
            return
        phase.sent[member.room] += 1

    async def run_phase(self, number: int, rate: float, duration: float) -> None:
        """Send this process's share of the phase; receipts count until ``report``."""
        phase = self.phase = Phase(number)
        for member in self.members:
            member.seen.clear()
        senders: dict[str, Member] = {}
        for member in self.members:
            if member.open and member.room not in senders:
                senders[member.room] = member
        rooms = sorted(senders)
        if rooms:
            shift = self.proc % len(rooms)
            rooms = rooms[shift:] + rooms[:shift]
        count = int(rate * duration / self.procs)
        interval = self.procs / rate
        mono0, wall0 = trio.current_time() + 0.1, time.time() + 0.1
        async with trio.open_nursery() as nursery:
            for k in range(count if rooms else 0):
                await trio.sleep_until(mono0 + k * interval)
                room = rooms[k % len(rooms)]
                text = f"{self.proc}:{number}:{k} {wall0 + k * interval!r}"
                nursery.start_soon(self._say, senders[room], text, phase)
        print(json.dumps({"event": "sent"}), flush=True)

    def report(self) -> None:
        phase, self.phase = self.phase, Phase(-1)
        print(json.dumps(phase.report(self.members)), flush=True)

    async def main(self) -> None:
        async with trio.open_nursery() as nursery:
            started = time.monotonic()
            async with trio.open_nursery() as connecting:
                for number, member in enumerate(self.members):
                    connecting.start_soon(self._connect, nursery, member, number)
            held = sum(m.open for m in self.members)
            gc.freeze()  # the held clients are long-lived: keep them out of GC passes
            secs = round(time.monotonic() - started, 2)
            line = {"event": "connected", "held": held, "failed": self.failed, "secs": secs}
            print(json.dumps(line), flush=True)
            while True:
                command = json.loads(await trio.to_thread.run_sync(sys.stdin.readline) or "{}")
                if command.get("cmd") == "phase":
                    await self.run_phase(command["phase"], command["rate"], command["duration"])
                elif command.get("cmd") == "report":
                    self.report()
                else:
                    break
            sys.stdout.flush()
            os._exit(0)  # closing thousands of sockets one by one is not worth the wait


def main() -> None:
    raise_nofile()
    trio.run(Client(sys.argv[1:]).main)


if __name__ == "__main__":
    main()
