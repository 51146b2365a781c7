"""local_tell and local_ask: trouper against raw trio memory channels, same process shape.

Every side times from the first send until the receiver has handled the last message
(tell) or until the last reply is back (ask), and reports messages per second.
"""

from __future__ import annotations

import trio

from benchmarks.cases._messages import Ping
from benchmarks.cases._timing import clock, rate

DEADLINE = 300.0  # seconds; a hung side fails loudly instead of stalling the run
TELL_BUFFER = 1024
ASK_BUFFER = 1  # measured faster than a rendezvous (0) for strict ping-pong


def trouper_tell(n: int) -> float:
    import trouper
    from benchmarks.cases._actors import Counter

    async def main() -> float:
        done = trio.Event()
        with trio.fail_after(DEADLINE):
            async with trouper.open_node() as node:
                ref = await node.spawn(Counter, n, done)
                start = clock()
                for i in range(n):
                    await ref.tell(Ping(i))
                await done.wait()
                elapsed = clock() - start
        return rate(n, elapsed)

    return trio.run(main)


def trouper_ask(n: int) -> float:
    import trouper
    from benchmarks.cases._actors import Counter

    async def main() -> float:
        done = trio.Event()
        with trio.fail_after(DEADLINE):
            async with trouper.open_node() as node:
                ref = await node.spawn(Counter, n, done)
                start = clock()
                for i in range(n):
                    reply = await ref.ask(Ping(i))
                    if reply != i:
                        raise AssertionError(f"ask({i}) answered {reply!r}")
                elapsed = clock() - start
                if not done.is_set():
                    raise AssertionError("the actor did not count every ask")
        return rate(n, elapsed)

    return trio.run(main)


def trio_channel_tell(n: int) -> float:
    async def consume(
        receive: trio.MemoryReceiveChannel[Ping],
        done: trio.Event,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        count = 0
        async with receive:
            async for _msg in receive:
                count += 1
                if count == n:
                    done.set()

    async def main() -> float:
        done = trio.Event()
        send, receive = trio.open_memory_channel[Ping](TELL_BUFFER)
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                await nursery.start(consume, receive, done)
                async with send:
                    start = clock()
                    for i in range(n):
                        await send.send(Ping(i))
                    await done.wait()
                    elapsed = clock() - start
        return rate(n, elapsed)

    return trio.run(main)


def trio_channel_ask(n: int) -> float:
    async def serve(
        requests: trio.MemoryReceiveChannel[Ping],
        replies: trio.MemorySendChannel[int],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        async with requests, replies:
            async for msg in requests:
                await replies.send(msg.n)

    async def main() -> float:
        request_send, request_receive = trio.open_memory_channel[Ping](ASK_BUFFER)
        reply_send, reply_receive = trio.open_memory_channel[int](ASK_BUFFER)
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                await nursery.start(serve, request_receive, reply_send)
                async with request_send, reply_receive:
                    start = clock()
                    for i in range(n):
                        await request_send.send(Ping(i))
                        reply = await reply_receive.receive()
                        if reply != i:
                            raise AssertionError(f"ping-pong {i} answered {reply!r}")
                    elapsed = clock() - start
        return rate(n, elapsed)

    return trio.run(main)
