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
    Hello,
    Join,
    Joined,
    Leave,
    Ping,
    Presence,
    ProtocolViolation,
    Say,
    canonical_name,
    parse_client_frame,
    render,
    render_error,
)
from examples.chat._room import EnterRoom, ExitRoom, Post, RoomActor
from hypothesis import given, settings
from hypothesis import strategies as st

import trouper
import trouper.web


def test_valid_frames_parse() -> None:
    assert parse_client_frame('{"type":"join","room":"r","user":"ada"}') == Join("r", "ada")
    assert parse_client_frame('{"type":"say","room":"r","text":"hi"}') == Say("r", "hi")
    assert parse_client_frame('{"type":"leave","room":"r"}') == Leave("r")
    assert parse_client_frame('{"type":"say","room":"r","text":"hi","seq":7}') == Say("r", "hi", 7)
    assert parse_client_frame('{"type":"hello"}') == Hello()
    assert parse_client_frame('{"type":"ping"}') == Ping()


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"say","room":"r","text":"hi","seq":-1}',
        '{"type":"say","room":"r","text":"hi","seq":9007199254740992}',
        '{"type":"join","room":"r","user":"   "}',
        '{"type":"join","room":"r","user":"ad\\u0000min"}',
        '{"type":"join","room":"r","user":"ad\\u200bmin"}',
        '{"type":"hello","user":"x"}',
    ],
)
def test_bad_sequence_numbers_and_names_are_violations(frame: str) -> None:
    with pytest.raises(ProtocolViolation):
        parse_client_frame(frame)


@given(st.text(min_size=1, max_size=30))
def test_a_canonical_name_is_its_own_canonical_name(name: str) -> None:
    once = canonical_name(name)
    assert canonical_name(once) == once
    assert canonical_name(name.upper()) == canonical_name(name.lower()) or not name.isascii()


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
    assert json.loads(render_error("bad")) == {"type": "error", "reason": "bad", "code": "invalid"}


class Session(trouper.Actor):
    """Stands in for a WebSocket session: the room's frames reach an actor
    that is not a session as ``SendText``; it collects them, decoded."""

    def __init__(self, out: trio.MemorySendChannel[object]) -> None:
        self.out = out

    @trouper.handler
    async def frame(self, msg: trouper.web.SendText) -> None:
        await self.out.send(json.loads(msg.text))


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://chat-{uuid.uuid4().hex}"
    return f"sqlite:///{tmp_path}/chat.db"


def message(id_: int, user: str, text: str) -> dict[str, object]:
    return {"type": "message", "room": "lobby", "id": id_, "user": user, "text": text}


def without_ts(frame: object) -> object:
    assert isinstance(frame, dict)
    return {k: v for k, v in frame.items() if k != "ts"}


async def test_join_say_leave_and_presence(store_url: str) -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            room = await node.spawn(RoomActor, "lobby", store_url)
            a_out, a_in = trio.open_memory_channel[object](100)
            b_out, b_in = trio.open_memory_channel[object](100)
            ada = await node.spawn(Session, a_out)
            bo = await node.spawn(Session, b_out)
            assert await room.ask(EnterRoom("ada", ada)) is None
            joined = {"type": "joined", "room": "lobby", "history": [], "members": ["ada"]}
            assert await a_in.receive() == joined
            await room.ask(EnterRoom("bo", bo))
            assert (await b_in.receive())["members"] == ["ada", "bo"]  # type: ignore[index]
            online = {"type": "presence", "room": "lobby", "user": "bo", "status": "online"}
            assert await a_in.receive() == online
            assert await room.ask(Post(ada, "hello", 1)) == 1
            assert await room.ask(Post(bo, "hi ada", 1)) == 2  # seq is per session
            for inbox in (a_in, b_in):  # everyone, the sender included
                got = [without_ts(await inbox.receive()) for _ in range(2)]
                assert got == [message(1, "ada", "hello"), message(2, "bo", "hi ada")]
            # A retried post (its reply was lost): delivered again with its first id.
            assert await room.ask(Post(ada, "hello", 1)) == 1
            for inbox in (a_in, b_in):
                assert without_ts(await inbox.receive()) == message(1, "ada", "hello")
            assert await room.ask(Post(node.dead_letters_ref, "not a member")) is None
            await room.ask(ExitRoom(bo))
            offline = {"type": "presence", "room": "lobby", "user": "bo", "status": "offline"}
            assert await a_in.receive() == offline
            await node.stop(ada)  # a closed session counts as leaving
            await trio.testing.wait_all_tasks_blocked()
            await room.ask(EnterRoom("cy", bo))
            joined = await b_in.receive()
            assert isinstance(joined, dict) and joined["members"] == ["cy"]
            assert [without_ts(m) for m in joined["history"]] == [
                {k: v for k, v in message(1, "ada", "hello").items() if k != "type"},
                {k: v for k, v in message(2, "bo", "hi ada").items() if k != "type"},
            ]


async def test_history_survives_the_room_and_ids_keep_increasing(store_url: str) -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            out, _inbox = trio.open_memory_channel[object](1000)
            session = await node.spawn(Session, out)
            room = await node.spawn(RoomActor, "r", store_url)
            await room.ask(EnterRoom("ada", session))
            for i in range(150):
                await room.ask(Post(session, f"m{i}", i))
            await node.stop(room)
            again = await node.spawn(RoomActor, "r", store_url)  # as after a crash
            # The reply to the last post was lost: its retry is not stored twice.
            assert await again.ask(Post(session, "m149", 149)) is None  # not a member yet
            await again.ask(EnterRoom("ada", session, rejoin=True))
            assert await again.ask(Post(session, "m149", 149)) == 150
            assert await again.ask(Post(session, "next", 150)) == 151
            fresh_out, fresh_in = trio.open_memory_channel[object](10)
            await again.ask(EnterRoom("bo", await node.spawn(Session, fresh_out)))
            joined = await fresh_in.receive()
            assert isinstance(joined, dict)
            assert [m["text"] for m in joined["history"]] == [
                *(f"m{i}" for i in range(51, 150)),
                "next",
            ]
            assert [m["id"] for m in joined["history"]] == list(range(52, 152))


def test_chat_messages_can_cross_the_wire() -> None:
    data = msgspec.msgpack.encode(ChatMessage("r", 1, "u", 0.5, "t"))
    assert msgspec.msgpack.decode(data, type=ChatMessage).text == "t"


async def test_a_room_stopped_cleanly_hands_its_members_to_its_successor(store_url: str) -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            a_out, a_in = trio.open_memory_channel[object](100)
            b_out, b_in = trio.open_memory_channel[object](100)
            ada = await node.spawn(Session, a_out)
            bo = await node.spawn(Session, b_out)
            room = await node.spawn(RoomActor, "lobby", store_url)
            await room.ask(EnterRoom("ada", ada))
            await room.ask(EnterRoom("bo", bo))
            assert [(await a_in.receive())["type"] for _ in range(2)] == ["joined", "presence"]  # type: ignore[index]
            assert (await b_in.receive())["type"] == "joined"  # type: ignore[index]
            await node.stop(room)  # as when its node shuts down
            successor = await node.spawn(RoomActor, "lobby", store_url, grace=0.5)
            await successor.ask(EnterRoom("ada", ada, rejoin=True))  # bo does not come back
            # No second "online" for ada; bo is announced offline after the grace.
            offline = {"type": "presence", "room": "lobby", "user": "bo", "status": "offline"}
            assert await a_in.receive() == offline
            await trio.testing.wait_all_tasks_blocked()
            assert a_in.statistics().current_buffer_used == 0
            assert b_in.statistics().current_buffer_used == 0
