"""Compatibility with a client not written here: pycrdt's own ``Provider``
over pycrdt.websocket's own client channel (``HttpxWebsocket`` on
``httpx_ws.aconnect_ws``, both unchanged) edits a document together with
our Python client, and both converge, in both directions."""

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pycrdt
import trio
from collab_edge_helpers import STEP, collab_node
from examples.collab.client import open_client
from httpx_ws import aconnect_ws
from pycrdt.websocket.websocket import HttpxWebsocket


class Changes:
    """Wakes a waiter at each transaction of ``doc`` (pycrdt calls observers
    synchronously, in the task that applied the update)."""

    def __init__(self, doc: pycrdt.Doc) -> None:
        self.event = trio.Event()
        doc.observe(lambda _: self.event.set())

    async def until(self, predicate: Callable[[], bool]) -> None:
        while True:
            self.event = trio.Event()
            if predicate():
                return
            await self.event.wait()


async def test_pycrdt_provider_converges_with_our_client(tmp_path: Path) -> None:
    with trio.fail_after(STEP * 2):
        async with (
            collab_node(tmp_path / "collab.db") as (_, gateway),
            open_client([gateway.url], "shared", "ada") as ada,
        ):
            await ada.synced()
            ada.text.insert(0, "written by our client. ")
            await ada.synced()

            theirs: pycrdt.Doc = pycrdt.Doc()
            text = theirs.get("content", type=pycrdt.Text)
            changes = Changes(theirs)
            url = f"{gateway.ws_url}?{urlencode({'doc': 'shared', 'user': 'pycrdt'})}"
            async with (
                httpx.AsyncClient() as http,
                aconnect_ws(url, http) as ws,
                pycrdt.Provider(theirs, HttpxWebsocket(ws, "shared")) as provider,
            ):
                await provider.synced.wait()
                await changes.until(lambda: str(text) == "written by our client. ")
                text += "And by pycrdt's Provider."
                await ada.wait_for(lambda: str(ada.text).endswith("pycrdt's Provider."))
                ada.text.insert(0, "[ada again] ")
                await changes.until(lambda: str(text).startswith("[ada again]"))
                assert str(text) == str(ada.text)

            async with open_client([gateway.url], "shared", "fresh") as fresh:
                await fresh.synced()
                assert str(fresh.text) == (
                    "[ada again] written by our client. And by pycrdt's Provider."
                )
