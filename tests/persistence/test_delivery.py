"""At-least-once delivery: resent until confirmed, recovered after a restart,
deduplicated by the receiver; to local and remote actors. Every test runs
over every store backend (``store_url``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from delivery_actors import Crash, Pending, Receiver, Replayed, Seen, Send, Sender
from persist_actors import wait_until

import trouper
from trouper.persistence import TooManyUnconfirmed

COOKIE = b"delivery-test-cookie"


async def received(out: trio.MemoryReceiveChannel[str], n: int) -> list[str]:
    return sorted([await out.receive() for _ in range(n)])


async def confirmed(sender: trouper.ActorRef) -> None:
    async def nothing_pending() -> bool:
        return await sender.ask(Pending()) == []

    await wait_until(nothing_pending, "every delivery is confirmed")


async def test_messages_lost_to_a_stopped_receiver_arrive_after_it_restarts(
    store_url: str,
) -> None:
    with trio.fail_after(30):
        async with trouper.open_node() as node:
            send, out = trio.open_memory_channel[str](100)
            first = await node.spawn(Receiver, send, name="inbox")
            sender = await node.spawn(Sender, "sender-1", store_url, "inbox")
            await sender.ask(Send("a"))
            assert await received(out, 1) == ["a"]
            await confirmed(sender)

            await node.stop(first)  # the receiver is gone: these are lost for now
            for text in ("b", "c", "d"):
                await sender.ask(Send(text))
            assert await sender.ask(Pending()) == [2, 3, 4]
            await node.spawn(Receiver, send, name="inbox")  # started again, same name
            assert await received(out, 3) == ["b", "c", "d"]
            await confirmed(sender)
            assert out.statistics().current_buffer_used == 0  # each arrived once


async def test_duplicates_are_dropped_by_the_receiver(store_url: str) -> None:
    with trio.fail_after(30):
        async with trouper.open_node() as node:
            send, out = trio.open_memory_channel[str](100)
            receiver = await node.spawn(Receiver, send, 3, name="inbox")  # loses 3 acks
            sender = await node.spawn(Sender, "sender-2", store_url, "inbox")
            for text in ("x", "y"):
                await sender.ask(Send(text))
            await confirmed(sender)  # the resends got acknowledged
            assert await received(out, 2) == ["x", "y"]
            assert await receiver.ask(Seen()) >= 3  # the resends were recognised...
            assert out.statistics().current_buffer_used == 0  # ...and not processed again


async def test_pending_deliveries_survive_the_senders_restart(store_url: str) -> None:
    with trio.fail_after(30):
        async with trouper.open_node() as node:
            send, out = trio.open_memory_channel[str](100)
            sender = await node.spawn(Sender, "sender-3", store_url, "inbox")
            await sender.ask(Send("p"))
            await sender.ask(Send("q"))
            with pytest.raises(RuntimeError):
                await sender.ask(Crash())  # the supervisor restarts it: recovery
            assert await sender.ask(Pending()) == [1, 2]
            await node.stop(sender)
            again = await node.spawn(Sender, "sender-3", store_url, "inbox")  # a new instance
            assert await again.ask(Pending()) == [1, 2]
            await node.spawn(Receiver, send, name="inbox")
            assert await received(out, 2) == ["p", "q"]
            await confirmed(again)
            await node.stop(again)
            # Confirmations are events too: nothing is resent by the next instance.
            third = await node.spawn(Sender, "sender-3", store_url, "inbox")
            assert await third.ask(Pending()) == []
            await third.ask(Send("r"))
            assert await received(out, 1) == ["r"]  # ids continue: 3 is new, not a duplicate


async def test_unconfirmed_deliveries_are_bounded(store_url: str) -> None:
    with trio.fail_after(30):
        async with trouper.open_node() as node:
            sender = await node.spawn(Sender, "sender-4", store_url, "nobody", 2)
            await sender.ask(Send("1"))
            await sender.ask(Send("2"))
            with pytest.raises(TooManyUnconfirmed) as info:
                await sender.ask(Send("3"))
            assert info.value.is_retryable and isinstance(info.value, trouper.MailboxFull)
            assert await sender.ask(Pending()) == [1, 2]  # refused before anything was stored


@asynccontextmanager
async def two_nodes() -> AsyncIterator[tuple[trouper.Node, trouper.Node]]:
    listen = "tcp://127.0.0.1:0"
    async with trouper.open_node("da", listen=listen, cookie=COOKIE) as a:
        seeds = [a.addresses[0]]  # (b needs a's bound port: the two cannot open together)
        async with trouper.open_node("db", listen=listen, cookie=COOKIE, seeds=seeds) as b:
            await a.wait_for_members(2, timeout=10)
            await b.wait_for_members(2, timeout=10)
            yield a, b


async def test_delivery_to_a_remote_receiver(store_url: str) -> None:
    with trio.fail_after(30):
        async with two_nodes() as (a, b):
            send, out = trio.open_memory_channel[str](100)
            await b.spawn(Receiver, send, 1, name="remote-inbox")  # loses its first ack
            await wait_until(lambda: a.registry.get("remote-inbox") is not None, "name gossip")
            sender = await a.spawn(Sender, "sender-5", store_url, "remote-inbox")
            for text in ("m1", "m2"):
                await sender.ask(Send(text))
            assert await received(out, 2) == ["m1", "m2"]
            await confirmed(sender)
            assert out.statistics().current_buffer_used == 0
            # The destination as a ref (to the actor on the other node) works alike.
            ref = await a.lookup("remote-inbox")
            assert ref.node_id == "db"
            by_ref = await a.spawn(Sender, "sender-6", store_url, ref)
            await by_ref.ask(Send("m3"))
            assert await received(out, 1) == ["m3"]
            await confirmed(by_ref)


async def test_a_snapshot_keeps_the_pending_deliveries(store_url: str) -> None:
    with trio.fail_after(30):
        async with trouper.open_node() as node:
            send, out = trio.open_memory_channel[str](100)
            sender = await node.spawn(Sender, "sender-7", store_url, "inbox", 100, 4)
            for text in "abcde":  # a snapshot after the 4th event, with 4 pending
                await sender.ask(Send(text))
            await node.stop(sender)
            again = await node.spawn(Sender, "sender-7", store_url, "inbox", 100, 4)
            assert await again.ask(Replayed()) == (5, 1)  # only "e" was replayed
            assert await again.ask(Pending()) == [1, 2, 3, 4, 5]
            await node.spawn(Receiver, send, name="inbox")
            assert await received(out, 5) == list("abcde")
            await confirmed(again)
            await node.stop(again)
            # Confirmations after the snapshot are events: none comes back.
            third = await node.spawn(Sender, "sender-7", store_url, "inbox", 100, 4)
            assert await third.ask(Pending()) == []


async def test_no_snapshot_while_a_delivery_to_a_ref_is_pending(store_url: str) -> None:
    with trio.fail_after(30):
        async with trouper.open_node() as node:
            send, _ = trio.open_memory_channel[str](100)
            receiver = await node.spawn(Receiver, send, 1000)  # never confirms
            sender = await node.spawn(Sender, "sender-8", store_url, receiver, 100, 2)
            for text in "xyz":
                await sender.ask(Send(text))
            await node.stop(sender)
            again = await node.spawn(Sender, "sender-8", store_url, receiver, 100, 2)
            assert await again.ask(Replayed()) == (3, 3)  # no snapshot: all replayed
            assert await again.ask(Pending()) == [1, 2, 3]
