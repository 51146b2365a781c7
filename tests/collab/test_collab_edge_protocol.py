"""The server's side of the Yjs protocol, frame by frame, with a raw
WebSocket: the server's SyncStep1 comes on connect (answered with what it
lacks, which reaches the others), a SyncStep1 is answered by a SyncStep2
(what the client lacks); an update is sent to the others, not echoed;
a query-awareness is answered with every state; a silent connection still
hears keepalives (y-websocket's client drops one silent for 30 s)."""

from pathlib import Path

import pycrdt
import trio
from collab_edge_helpers import STEP, collab_node
from examples.collab import _wire
from examples.collab.client import open_client
from trio_websocket import WebSocketConnection, open_websocket_url


async def _next(ws: WebSocketConnection, skip_keepalive: bool = True) -> _wire.Message:
    while True:
        frame = await ws.get_message()
        assert isinstance(frame, bytes)
        if skip_keepalive and frame == _wire.KEEPALIVE:
            continue
        return _wire.parse(frame)


async def test_the_exchange_frame_by_frame(tmp_path: Path) -> None:
    with trio.fail_after(STEP * 2):
        async with (
            collab_node(tmp_path / "collab.db", sessions=False, keepalive_interval=0.2) as (
                _,
                gateway,
            ),
            open_client([gateway.url], "raw", "ada") as ada,
        ):
            await ada.synced()
            ada.text += "server text"
            await ada.synced()
            mine: pycrdt.Doc = pycrdt.Doc()
            offline = mine.get("offline", type=pycrdt.Text)
            offline += "made before connecting"
            url = f"{gateway.ws_url}?doc=raw&user=raw"
            async with open_websocket_url(url) as ws:
                # On connect, before anything is asked: the server's SyncStep1.
                step1 = await _next(ws)
                assert isinstance(step1, _wire.SyncStep1)
                assert step1.state_vector == ada.doc.get_state()
                # Answered with what it lacks: our offline edit reaches ada.
                await ws.send_message(_wire.encode_sync_step2(mine.get_update(step1.state_vector)))
                await ada.wait_for(
                    lambda: (
                        str(ada.doc.get("offline", type=pycrdt.Text)) == "made before connecting"
                    )
                )
                await ws.send_message(_wire.encode_sync_step1(mine.get_state()))
                step2 = await _next(ws)
                while isinstance(step2, _wire.AwarenessUpdate):  # ada's state, on joining
                    step2 = await _next(ws)
                assert isinstance(step2, _wire.SyncStep2)
                mine.apply_update(step2.update)
                assert str(mine.get("content", type=pycrdt.Text)) == "server text"

                # Our update reaches ada, and is not echoed back to us.
                text = mine.get("content", type=pycrdt.Text)
                before = mine.get_state()
                text += " and raw"
                await ws.send_message(_wire.encode_update(mine.get_update(before)))
                await ada.wait_for(lambda: str(ada.text) == "server text and raw")
                await ws.send_message(_wire.encode_query_awareness())
                # The answer, then a keepalive (silent, it still hears from the
                # server), and never our own update echoed.
                answered = False
                while True:
                    frame = await ws.get_message()
                    if frame == _wire.KEEPALIVE:
                        if answered:
                            break
                        continue
                    message = _wire.parse(frame)
                    assert not isinstance(message, _wire.SyncUpdate), "our update came back"
                    if isinstance(message, _wire.AwarenessUpdate):
                        answered = answered or ada.awareness.client_id in message.clients
