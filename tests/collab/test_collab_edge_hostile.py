"""Hostile frames: each offending connection is closed with a code and a
reason naming the problem, and an honest editor of the same document keeps
editing throughout (its updates still reach another honest editor)."""

from pathlib import Path
from urllib.parse import urlencode

import pytest
import trio
from collab_edge_helpers import STEP, collab_node
from examples.collab import _wire
from examples.collab.client import open_client
from trio_websocket import ConnectionClosed, open_websocket_url

MAX_MESSAGE = 256 * 1024  # the gateway's bound in this test (the default is 8 MiB)

CASES = [
    # (what, the frame (bytes, or str for a text frame), code, words in the reason)
    ("garbage", b"\xff\xff", 1007, "truncated"),
    ("unknown type", b"\x07\x00", 1003, "unknown message type 7"),
    ("unknown sync sub-type", b"\x00\x09\x00", 1003, "unknown sub-type 9"),
    ("trailing bytes", _wire.encode_sync_step1(b"\x00") + b"junk", 1007, "bytes after its end"),
    ("text frame", "hello", 1003, "text frames"),
    ("bad update", _wire.encode_update(b"\x05\xff\xfe\x00\x01garbage"), 1007, "refused"),
    ("bad state vector", _wire.encode_sync_step1(b"\x03\x01"), 1007, "state vector"),
    ("huge message", b"\x00\x02" + b"\x00" * (MAX_MESSAGE + 1), 1009, ""),
]


def _url(base: str, **query: str) -> str:
    return f"{base}?{urlencode(query)}"


async def _closed_by(url: str, frame: bytes | str | None) -> tuple[int, str]:
    async with open_websocket_url(url, max_message_size=MAX_MESSAGE * 2) as ws:
        try:
            if frame is not None:
                await ws.send_message(frame)
            while True:
                await ws.get_message()  # awareness, keepalives: until the close
        except ConnectionClosed as closed:
            return closed.reason.code, closed.reason.reason or ""


async def test_hostile_frames_close_only_the_offender(tmp_path: Path) -> None:
    with trio.fail_after(STEP * 4):
        async with (
            collab_node(tmp_path / "collab.db", max_message_size=MAX_MESSAGE) as (_, gateway),
            open_client([gateway.url], "doc", "ada") as ada,
            open_client([gateway.url], "doc", "bo") as bo,
        ):
            await ada.synced()
            for n, (what, frame, code, words) in enumerate(CASES):
                got = await _closed_by(_url(gateway.ws_url, doc="doc", user=f"x{n}"), frame)
                assert got[0] == code, (what, got)
                assert words in got[1], (what, got)
                ada.text += f"[{n}]"
                await bo.wait_for(lambda n=n: f"[{n}]" in str(bo.text))
            assert ada.connections == bo.connections == 1  # never disturbed
            assert str(ada.text) == "".join(f"[{n}]" for n in range(len(CASES)))


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"user": "ada"}, "?doc="),
        ({"doc": "a/b", "user": "ada"}, "?doc="),
        ({"doc": "x" * 129, "user": "ada"}, "?doc="),
        ({"doc": "ok"}, "?user="),
        ({"doc": "ok", "user": "u" * 65}, "?user="),
        ({"doc": "ok", "user": "bell\x07"}, "?user="),
    ],
)
async def test_a_bad_query_is_refused(tmp_path: Path, query: dict[str, str], words: str) -> None:
    with trio.fail_after(STEP):
        async with collab_node(tmp_path / "collab.db", sessions=False) as (_, gateway):
            code, reason = await _closed_by(_url(gateway.ws_url, **query), None)
    assert code == 1008 and words in reason
