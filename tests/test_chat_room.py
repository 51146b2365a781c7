"""The chat example's protocol validation and its room actor (with real
stores; sessions are plain actors here, the WebSocket gateway comes later)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import msgspec
import pytest
import trio
import trio.testing
from examples.chat._protocol import (
    MAX_TEXT_BYTES,
    ChatMessage,
    Join,
    Joined,
    Leave,
    Presence,
    ProtocolViolation,
    Say,
    parse_client_frame,
    render,
    render_error,
)
from examples.chat._room import EnterRoom, ExitRoom, Post, RoomActor
from hypothesis import given, settings
from hypothesis import strategies as st

import trouper


def test_valid_frames_parse() -> None:
    assert parse_client_frame('{"type":"join","room":"r","user":"ada"}') == Join("r", "ada")
    assert parse_client_frame('{"type":"say","room":"r","text":"hi"}') == Say("r", "hi")
    assert parse_client_frame('{"type":"leave","room":"r"}') == Leave("r")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "invalid message"),
        ('{"type":"dance","room":"r"}', "invalid message"),
        ('{"room":"r"}', "invalid message"),
        ('{"type":"join","room":"r"}', "invalid message"),
        ('{"type":"join","room":5,"user":"u"}', "invalid message"),
        ('{"type":"join","room":"","user":"u"}', "invalid message"),
        ('{"type":"say","room":"r","text":7}', "invalid message"),
        ('{"type":"leave","room":"r","extra":1}', "invalid message"),
        (json.dumps({"type": "say", "room": "r", "text": "é" * (MAX_TEXT_BYTES // 2 + 1)}), "text"),
    ],
)
def test_bad_frames_are_violations_with_a_reason(frame: str, reason: str) -> None:
    with pytest.raises(ProtocolViolation) as info:
        parse_client_frame(frame)
    assert reason in info.value.reason


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text_either_parses_or_is_a_violation(text: str) -> None:
    try:
        frame = parse_client_frame(text)
    except ProtocolViolation as exc:
        assert exc.reason
    else:
        assert isinstance(frame, Join | Say | Leave)


def test_server_frames_render_as_the_protocol_says() -> None:
    message = ChatMessage("r", 3, "ada", 1.5, "hi")
    assert json.loads(render(message)) == {
        "type": "message",
        "room": "r",
        "id": 3,
        "user": "ada",
        "ts": 1.5,
        "text": "hi",
    }
    assert json.loads(render(Presence("r", "bo", "online")))["type"] == "presence"
    joined = json.loads(render(Joined("r", [message], ["ada"])))
    assert joined["type"] == "joined" and joined["history"][0]["id"] == 3
    assert json.loads(render_error("bad")) == {"type": "error", "reason": "bad"}


class Session(trouper.Actor):
    """Stands in for a WebSocket session: collects what the room delivers."""

    def __init__(self, out: trio.MemorySendChannel[object]) -> None:
        self.out = out

    @trouper.handler
    async def event(self, msg: ChatMessage | Presence) -> None:
        await self.out.send(msg)


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://chat-{uuid.uuid4().hex}"
    return f"sqlite:///{tmp_path}/chat.db"


async def test_join_say_leave_and_presence(store_url: str) -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            room = await node.spawn(RoomActor, "lobby", store_url)
            a_out, a_in = trio.open_memory_channel[object](100)
            b_out, b_in = trio.open_memory_channel[object](100)
            ada = await node.spawn(Session, a_out)
            bo = await node.spawn(Session, b_out)
            assert await room.ask(EnterRoom("ada", ada)) == Joined("lobby", [], ["ada"])
            joined = await room.ask(EnterRoom("bo", bo))
            assert joined.members == ["ada", "bo"]
            assert await a_in.receive() == Presence("lobby", "bo", "online")
            first = await room.ask(Post(ada, "hello"))
            second = await room.ask(Post(bo, "hi ada"))
            assert (first.id, second.id) == (1, 2) and first.user == "ada"
            for inbox in (a_in, b_in):  # everyone, the sender included
                assert [await inbox.receive(), await inbox.receive()] == [first, second]
            assert await room.ask(Post(node.dead_letters_ref, "not a member")) is None
            await room.ask(ExitRoom(bo))
            assert await a_in.receive() == Presence("lobby", "bo", "offline")
            await node.stop(ada)  # a closed session counts as leaving
            await trio.testing.wait_all_tasks_blocked()
            assert await room.ask(EnterRoom("cy", bo)) == Joined("lobby", [first, second], ["cy"])


async def test_history_survives_the_room_and_ids_keep_increasing(store_url: str) -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            out, _ = trio.open_memory_channel[object](1000)
            session = await node.spawn(Session, out)
            room = await node.spawn(RoomActor, "r", store_url)
            await room.ask(EnterRoom("ada", session))
            for i in range(150):
                await room.ask(Post(session, f"m{i}"))
            await node.stop(room)
            again = await node.spawn(RoomActor, "r", store_url)  # as after a crash
            joined = await again.ask(EnterRoom("ada", session))
            assert len(joined.history) == 100
            assert [m.text for m in joined.history] == [f"m{i}" for i in range(50, 150)]
            assert [m.id for m in joined.history] == list(range(51, 151))
            assert (await again.ask(Post(session, "next"))).id == 151


def test_chat_messages_can_cross_the_wire() -> None:
    data = msgspec.msgpack.encode(ChatMessage("r", 1, "u", 0.5, "t"))
    assert msgspec.msgpack.decode(data, type=ChatMessage).text == "t"
