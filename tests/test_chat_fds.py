"""The chat's rooms share their node's store: file descriptors do not grow
with the room count (issue 13: 10,000 rooms used to hold 10,017)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio
from examples.chat._room import RoomActor
from examples.chat._server import GetRoom, RoomDirectory

import trouper

ROOMS = 500

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_many_rooms_hold_one_sqlite_connection(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/chat.db"
    with trio.fail_after(60):
        async with trouper.open_node(store=url) as node:
            first = await node.spawn(RoomActor, "room-0")  # opens the node's store
            before = open_fds()
            rooms = [first] + [await node.spawn(RoomActor, f"room-{i}") for i in range(1, ROOMS)]
            after = open_fds()
            # The sqlite file, its WAL and shared-memory index were open before the
            # second room; 500 rooms with a connection each would add 1,500.
            assert after - before < 10, (before, after)
            assert len({room.path for room in rooms}) == ROOMS
            stores = node.kernel.cell_at("/system/stores")
            assert stores is not None and len(trouper.runtime.child_cells(stores)) == 1


async def test_the_directory_and_its_rooms_use_the_nodes_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/chat.db"
    with trio.fail_after(30):
        async with trouper.open_node(store=url) as node:
            directory = await node.spawn(RoomDirectory, name="chat-rooms")
            before = None
            for i in range(50):
                await directory.ask(GetRoom(f"r{i}"))
                if before is None:
                    before = open_fds()
            assert before is not None and open_fds() - before < 10
            store = await node.store()
            owners = [await store.get(f"chat/owner/r{i}") for i in range(50)]
            assert owners == [node.id.encode()] * 50  # claimed in the node's default store
