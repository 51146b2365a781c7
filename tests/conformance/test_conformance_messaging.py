"""Ask, tell, stream and watch between two in-process nodes, per transport;
8 MiB messages and 1000 concurrent asks over one link."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
from conformance_actors import (
    Blob,
    CallBack,
    Count,
    Crash,
    Echo,
    Firehose,
    FloodState,
    Hang,
    Numbers,
    Ping,
    Pong,
    Quit,
    Silent,
    Sink,
    Watcher,
    WatchIt,
)
from conformance_helpers import Net

import trouper

EIGHT_MIB = 8 * 1024 * 1024


async def test_ask_and_tell(net: Net) -> None:
    send, recv = trio.open_memory_channel[tuple[Any, Any]](100)
    with trio.fail_after(20):
        async with net.cluster(2) as (a, b):
            echo = await b.spawn(Echo, name="echo")
            # (left hanging: no 5 s grace to finish its Hang when the node closes)
            await b.spawn(Silent, name="silent", shutdown=0.1)
            ref = await a.lookup("echo", timeout=5)
            assert ref.node_id == "n1" and ref == echo
            assert await ref.ask(Ping(1)) == Pong(2, "n1")

            # tells arrive, in order with the ask that follows them on the link
            for i in range(10):
                await ref.tell(Ping(i))
            ref.tell_nowait(Ping(99))
            assert await ref.ask(Count()) == 12

            # refs inside messages, and the implicit sender, cross the wire
            sink = await a.spawn(Sink, send)
            await ref.tell(CallBack(sink, 7))
            assert await recv.receive() == (Ping(7), echo)

            # errors: boxed remote failure (the actor restarts), unhandled, timeout
            with pytest.raises(trouper.RemoteError) as info:
                await ref.ask(Crash("remote failure"))
            err = info.value
            assert (err.type_name, err.message) == ("ValueError", "remote failure")
            assert (err.node, err.path) == ("n1", "/user/echo")
            assert err.traceback == ""  # tracebacks cross only with remote_tracebacks=True
            with pytest.raises(trouper.UnhandledMessage):
                await ref.ask(2.5)
            silent = await a.lookup("silent", timeout=5)
            with pytest.raises(trouper.AskTimeout):
                await silent.ask(Hang(), timeout=0.1)
            assert await ref.ask(Ping(5)) == Pong(6, "n1")
            assert await ref.ask(Count()) == 1  # a fresh instance since the failure

            # the other way round, over the same link
            await a.spawn(Echo, name="echo-a")
            back = await b.lookup("echo-a", timeout=5)
            assert await back.ask(Ping(10)) == Pong(11, "n0")
            await back.tell(CallBack(sink, 8))  # a ref of a's, sent back to a from b
            assert await recv.receive() == (Ping(8), back)

            # a dead actor: asks fail at once, tells are dropped quietly
            await b.stop(echo)
            with pytest.raises(trouper.ActorDead):
                await ref.ask(Ping(1))
            await ref.tell(Ping(1))
            assert await back.ask(Ping(0)) == Pong(1, "n0")  # the link carries on


async def test_streams(net: Net) -> None:
    state = FloodState()
    with trio.fail_after(20):
        async with net.cluster(2) as (a, b):
            await b.spawn(Echo, name="echo")
            await b.spawn(Firehose, state, name="hose")
            await a.spawn(Echo, name="echo-a")
            ref = await a.lookup("echo", timeout=5)

            async with ref.stream(Numbers(2000), window=8) as items:
                assert [i async for i in items] == list(range(2000))
            async with ref.stream(Numbers(0)) as items:
                assert [i async for i in items] == []
            async with ref.stream(Numbers(30), window=1) as items:
                assert [i async for i in items] == list(range(30))

            # several streams at once over one link, both ways, each whole and in order
            back = await b.lookup("echo-a", timeout=5)
            got: dict[tuple[str, int], list[int]] = {}

            async def consume(target: trouper.ActorRef, n: int, window: int) -> None:
                async with target.stream(Numbers(n), window=window) as items:
                    got[target.node_id, n] = [i async for i in items]

            async with trio.open_nursery() as nursery:
                for n, window in [(500, 4), (300, 16), (1, 1), (200, 2)]:
                    nursery.start_soon(consume, ref, n, window)
                    nursery.start_soon(consume, back, n + 1, window)
            assert got == {
                **{("n1", n): list(range(n)) for n in (500, 300, 1, 200)},
                **{("n0", n + 1): list(range(n + 1)) for n in (500, 300, 1, 200)},
            }

            # a consumer that leaves early stops the producer
            hose = await a.lookup("hose", timeout=5)
            taken = 0
            async with hose.stream(Numbers(1_000_000), window=8) as items:
                async for i in items:
                    assert i == taken
                    taken += 1
                    if taken == 20:
                        break
            await state.finished.wait()
            # the window, plus the item in the producer's local channel and the
            # one its generator had ready
            assert state.produced <= taken + 8 + 2, state.produced
            assert await ref.ask(Ping(1)) == Pong(2, "n1")


async def test_watch(net: Net) -> None:
    send_a, on_a = trio.open_memory_channel[trouper.Terminated](10)
    send_b, on_b = trio.open_memory_channel[trouper.Terminated](10)
    with trio.fail_after(20):
        async with net.cluster(2) as (a, b):
            watcher = await a.spawn(Watcher, send_a)

            # stopped by its node: "normal"
            local = await b.spawn(Echo, name="watched")
            remote = await a.lookup("watched", timeout=5)
            await watcher.ask(WatchIt(remote))
            assert await remote.ask(Ping(0)) == Pong(1, "n1")  # the Watch went ahead of this
            await b.stop(local)
            assert await on_a.receive() == trouper.Terminated(remote, "normal")
            with pytest.raises(trouper.ActorDead):
                await remote.ask(Ping(1))
            # watching the dead: told at once
            await watcher.ask(WatchIt(remote))
            assert await on_a.receive() == trouper.Terminated(remote, "no such actor")

            # stops itself
            await b.spawn(Echo, name="quitter")
            quitter = await a.lookup("quitter", timeout=5)
            await watcher.ask(WatchIt(quitter))
            await quitter.tell(Quit())
            assert await on_a.receive() == trouper.Terminated(quitter, "normal")

            # the other way round: a watcher on b, a temporary actor on a that fails
            watcher_b = await b.spawn(Watcher, send_b)
            await a.spawn(Echo, name="fragile", restart="temporary")
            fragile = await b.lookup("fragile", timeout=5)
            await watcher_b.ask(WatchIt(fragile))
            assert await fragile.ask(Ping(0)) == Pong(1, "n0")
            with pytest.raises(trouper.RemoteError):
                await fragile.ask(Crash("boom"))
            terminated = await on_b.receive()
            assert terminated.ref == fragile
            assert terminated.reason == "error: ValueError('boom')"

            # nobody was told anything else
            with pytest.raises(trio.WouldBlock):
                on_a.receive_nowait()
            with pytest.raises(trio.WouldBlock):
                on_b.receive_nowait()


async def test_8_mib_messages(net: Net) -> None:
    payload = random.Random(8).randbytes(EIGHT_MIB)
    send, recv = trio.open_memory_channel[tuple[Any, Any]](10)
    with trio.fail_after(60):
        # Default failure detection, not FAST: heartbeats queue behind a big
        # frame, and the detector counts only whole frames as signs of life,
        # so with a 0.5 s acceptable pause a frame taking longer than that to
        # arrive (quic, loaded CI) would get a healthy peer declared down.
        async with net.cluster(2) as (a, b):
            await b.spawn(Echo, name="echo-b")
            await a.spawn(Echo, name="echo-a")
            await b.spawn(Sink, send, name="sink-b")
            await a.spawn(Sink, send, name="sink-a")
            to_b, sink_b = await a.lookup("echo-b", timeout=5), await a.lookup("sink-b", timeout=5)
            to_a, sink_a = await b.lookup("echo-a", timeout=5), await b.lookup("sink-a", timeout=5)

            # ask: 8 MiB there and 8 MiB back, both ways
            assert (await to_b.ask(Blob(payload), timeout=None)).data == payload[::-1]
            assert (await to_a.ask(Blob(payload), timeout=None)).data == payload[::-1]

            # tell, both ways
            await sink_b.tell(Blob(payload))
            msg, _ = await recv.receive()
            assert msg.data == payload
            await sink_a.tell(Blob(payload))
            msg, _ = await recv.receive()
            assert msg.data == payload

            # small asks are answered while a big one is under way
            answers: list[Pong] = []

            async def pings() -> None:
                for i in range(50):
                    answers.append(await to_b.ask(Ping(i), timeout=None))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pings)
                assert (await to_b.ask(Blob(payload), timeout=None)).data == payload[::-1]
            assert answers == [Pong(i + 1, "n1") for i in range(50)]
            assert await to_b.ask(Count()) == 2 + 50


async def test_1000_concurrent_asks(net: Net) -> None:
    with trio.fail_after(30):
        async with net.cluster(2) as (a, b):
            await b.spawn(Echo, name="echo")
            ref = await a.lookup("echo", timeout=5)
            results: dict[int, Pong] = {}

            async def one(i: int) -> None:
                results[i] = await ref.ask(Ping(i), timeout=None)

            async with trio.open_nursery() as nursery:
                for i in range(1000):
                    nursery.start_soon(one, i)
            assert results == {i: Pong(i + 1, "n1") for i in range(1000)}
            assert await ref.ask(Count()) == 1000
