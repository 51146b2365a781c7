"""Helpers of the state-sync tests: pycrdt clients that speak to a
``DocumentActor`` the way the WebSocket edge does (SyncRequest, then
ApplyUpdate of what the server lacks), and polling with a deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pycrdt
import trio
from examples.collab.sync._messages import (
    DIRECTORY_NAME,
    Applied,
    ApplyUpdate,
    OpenDocument,
    SyncReply,
    SyncRequest,
)

import trouper


class Client:
    """One editor: its own pycrdt Doc, synced with the document's actor."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.doc = pycrdt.Doc()
        self.text = self.doc.get("content", type=pycrdt.Text)

    def __str__(self) -> str:
        return str(self.text)

    def edit(self, fn: Callable[[pycrdt.Text], object]) -> bytes:
        """Make a local edit; returns its update."""
        before = self.doc.get_state()
        fn(self.text)
        return self.doc.get_update(before)

    def insert(self, index: int, chars: str) -> bytes:
        return self.edit(lambda text: text.insert(index, chars))

    async def send(self, ref: trouper.ActorRef, update: bytes) -> int:
        applied = await ref.ask(ApplyUpdate(update, self.name))
        assert isinstance(applied, Applied)
        return applied.version

    async def sync(self, ref: trouper.ActorRef) -> int:
        """The Yjs handshake both ways: take what the server has, then send
        what it lacks. Returns the version after it."""
        reply = await ref.ask(SyncRequest(self.doc.get_state()))
        assert isinstance(reply, SyncReply)
        self.doc.apply_update(reply.update)
        missing = self.doc.get_update(reply.state_vector)
        if missing != b"\x00\x00":
            return await self.send(ref, missing)
        return reply.version


async def open_doc(node: trouper.Node, doc: str, create: bool = True) -> trouper.ActorRef:
    directory = await node.lookup(DIRECTORY_NAME)
    ref = await directory.ask(OpenDocument(doc, create), timeout=20)
    assert isinstance(ref, trouper.ActorRef)
    return ref


async def server_text(ref: trouper.ActorRef) -> str:
    reply = await ref.ask(SyncRequest(b"\x00"))
    assert isinstance(reply, SyncReply)
    doc = pycrdt.Doc()
    doc.apply_update(reply.update)
    return str(doc.get("content", type=pycrdt.Text))


async def wait_until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], what: str, timeout: float = 10.0
) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after ``timeout``."""
    with trio.move_on_after(timeout):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await trio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")
