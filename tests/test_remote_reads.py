"""How a plain TCP link is read (remote/_conn.py, ``_receive``): it waits for
readability first, and reads again at once after a read that filled its
buffer. Both ways must deliver every byte, in order, over real TCP."""

from __future__ import annotations

import random

import msgspec
import trio

import trouper

COOKIE = b"test-reads-cookie"


class Blob(msgspec.Struct):
    n: int
    data: bytes


class Sink(trouper.Actor):
    def __init__(self) -> None:
        self.seen: list[int] = []

    @trouper.handler
    async def blob(self, msg: Blob) -> Blob:
        self.seen.append(msg.n)
        return msg

    @trouper.handler
    async def count(self, msg: int) -> list[int]:
        return self.seen


async def test_large_and_small_messages_arrive_whole_and_in_order() -> None:
    rng = random.Random(11)
    with trio.fail_after(60):
        async with (
            trouper.open_node("host", listen="tcp://127.0.0.1:0", cookie=COOKIE) as host,
            trouper.open_node("client", seeds=host.addresses, cookie=COOKIE) as client,
        ):
            await client.wait_for_members(2, timeout=10)
            await host.spawn(Sink, name="sink")
            sink = await client.lookup("sink", timeout=5)
            # Replies larger than one read (several reads each, the middle
            # ones filling the buffer) and small ones between them.
            for n in range(40):
                size = rng.choice([1, 100, 65535, 65536, 65537, 200_000, 700_000])
                data = rng.randbytes(size)
                reply = await sink.ask(Blob(n, data))
                assert reply == Blob(n, data)
            # A burst of tells: reads that find more already waiting.
            blobs = [Blob(100 + i, rng.randbytes(rng.randrange(1, 30_000))) for i in range(300)]
            for blob in blobs:
                await sink.tell(blob)
            seen = await sink.ask(0)
            assert seen == [*range(40), *(b.n for b in blobs)]
