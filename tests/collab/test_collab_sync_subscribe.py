"""Subscribe streams of a DocumentActor: order, a slow subscriber coalesced
(and still converging), one too far behind resynced, the fast one never
stalled."""

from __future__ import annotations

import pycrdt
import trio
from collab_sync_helpers import Client, open_doc
from examples.collab.sync import spawn_state_sync
from examples.collab.sync._messages import ApplyUpdate, DocEvent, Subscribe

import trouper


def follower() -> tuple[pycrdt.Doc, pycrdt.Text]:
    doc = pycrdt.Doc()
    return doc, doc.get("content", type=pycrdt.Text)


async def test_subscribers_get_a_resync_then_every_update_in_order() -> None:
    a = Client("a")
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "ordered")
            await a.send(ref, a.insert(0, "before "))
            async with ref.stream(Subscribe("hub-1")) as events:
                first = await events.__anext__()
                assert isinstance(first, DocEvent) and first.kind == "resync"
                doc, text = follower()
                doc.apply_update(first.data)
                assert str(text) == "before " and first.state_vector == doc.get_state()
                sent = []
                for i in range(20):
                    update = a.insert(len(str(a)), f"{i},")
                    sent.append((await a.send(ref, update), update))
                got = []
                async for event in events:
                    assert event.kind == "update" and event.origin == "a"
                    got.append((event.version, event.data))
                    if len(got) == len(sent):
                        break
                assert got == sent  # unchanged bytes, in order, with their versions
                for _, update in got:
                    doc.apply_update(update)
                assert str(text) == str(a)


async def test_a_slow_subscriber_is_coalesced_then_resynced_and_never_stalls_others() -> None:
    a = Client("a")
    with trio.fail_after(30):
        async with trouper.open_node() as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "slow")
            fast_doc, fast_text = follower()
            fast_seen = trio.Event()
            total = 300

            async def fast() -> None:
                async with ref.stream(Subscribe("fast", queue=16)) as events:
                    async for event in events:
                        fast_doc.apply_update(event.data)
                        if len(str(fast_text)) == total:
                            fast_seen.set()
                            return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(fast)
                # The slow one opens its stream with a tiny window and reads nothing.
                async with ref.stream(Subscribe("slow", queue=4), window=1) as slow:
                    first = await slow.__anext__()
                    slow_doc, slow_text = follower()
                    slow_doc.apply_update(first.data)
                    for i in range(total):
                        await a.send(ref, a.insert(i, "x"))
                    # The fast subscriber saw everything while the slow one read nothing.
                    await fast_seen.wait()
                    kinds = []
                    async for event in slow:
                        kinds.append(event.kind)
                        slow_doc.apply_update(event.data)
                        if str(slow_text) == str(a):
                            break
                    # Far fewer messages than updates: merged (or one resync).
                    assert len(kinds) < 20, kinds
                assert str(fast_text) == str(a)


async def test_a_subscriber_too_far_behind_gets_a_resync() -> None:
    a = Client("a")
    with trio.fail_after(30):
        async with trouper.open_node() as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "behind")
            async with ref.stream(Subscribe("slow", queue=4), window=1) as slow:
                first = await slow.__anext__()
                doc, text = follower()
                doc.apply_update(first.data)
                # 64 KiB updates: merged they exceed RESYNC_BYTES (4 MiB) quickly.
                for _ in range(80):
                    await a.send(ref, a.insert(0, "y" * 65536))
                kinds = []
                async for event in slow:
                    kinds.append(event.kind)
                    doc.apply_update(event.data)
                    if str(text) == str(a):
                        break
                assert "resync" in kinds, kinds
                assert len(kinds) <= 4


async def test_malformed_update_reaches_no_subscriber() -> None:
    a = Client("a")
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "clean")
            async with ref.stream(Subscribe("hub")) as events:
                await events.__anext__()
                try:
                    await ref.ask(ApplyUpdate(b"bad bytes", "evil"))
                except trouper.InvalidArgument:
                    pass
                await a.send(ref, a.insert(0, "ok"))
                event = await events.__anext__()
                assert (event.kind, event.origin) == ("update", "a")
