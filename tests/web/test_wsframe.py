"""WebSocket framing (``trouper.web._wsframe``): pure, so mostly properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trouper.web._wsframe import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    Close,
    FrameDecoder,
    HandshakeError,
    Message,
    Outgoing,
    Ping,
    WsProtocolError,
    accept_key,
    check_handshake,
    close_frame,
    encode_frame,
)

masks = st.binary(min_size=4, max_size=4)
messages = st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=8)


def fragments(draw: st.DrawFn, payload: bytes) -> list[bytes]:
    """``payload`` cut into 1..4 pieces at drawn places."""
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    points = [0, *cuts, len(payload)]
    return [payload[a:b] for a, b in itertools.pairwise(points)]


@st.composite
def client_streams(draw: st.DrawFn) -> tuple[list[object], bytes]:
    """Messages, fragmented, with pings between fragments: the events and the bytes."""
    events: list[object] = []
    wire = b""
    for item in draw(messages):
        is_text = isinstance(item, str)
        payload = item.encode() if is_text else item
        pieces = fragments(draw, payload)
        for n, piece in enumerate(pieces):
            opcode = (OP_TEXT if is_text else OP_BINARY) if n == 0 else OP_CONT
            fin = n == len(pieces) - 1
            wire += encode_frame(opcode, piece, fin=fin, mask=draw(masks))
            if fin:
                events.append(("message", item))
            if draw(st.booleans()):  # a control frame may come between fragments
                ping = draw(st.binary(max_size=125))
                wire += encode_frame(OP_PING, ping, mask=draw(masks))
                events.append(("ping", ping))
    return events, wire


def as_tuples(events: list[object]) -> list[object]:
    out: list[object] = []
    for event in events:
        if isinstance(event, Message):
            out.append(("message", event.data))
        elif isinstance(event, Ping):
            out.append(("ping", event.payload))
    return out


@given(client_streams(), st.lists(st.integers(1, 64), min_size=1, max_size=40))
def test_any_fragmentation_and_any_read_split_round_trips(
    stream: tuple[list[object], bytes], splits: list[int]
) -> None:
    expected, wire = stream
    decoder = FrameDecoder(10_000)
    got: list[object] = []
    at = 0
    for size in splits * (len(wire) // max(1, sum(splits)) + 1):
        got += decoder.feed(wire[at : at + size])
        at += size
        if at >= len(wire):
            break
    got += decoder.feed(wire[at:])
    assert as_tuples(got) == expected


@given(st.binary(max_size=70_000), masks)
def test_lengths_of_every_size_class_and_masks(payload: bytes, mask: bytes) -> None:
    decoder = FrameDecoder(1 << 20)
    [event] = decoder.feed(encode_frame(OP_BINARY, payload, mask=mask))
    assert event == Message(payload)
    client = FrameDecoder(1 << 20, masked=False)
    [event] = client.feed(encode_frame(OP_BINARY, payload))
    assert event == Message(payload)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_length_boundaries(size: int) -> None:
    payload = bytes(size)
    frame = encode_frame(OP_BINARY, payload, mask=b"abcd")
    assert FrameDecoder(1 << 20).feed(frame) == [Message(payload)]


def test_outgoing_is_encoded_once_and_shared() -> None:
    frame = Outgoing("héllo")
    assert frame.wire() is frame.wire()
    assert FrameDecoder(100, masked=False).feed(frame.wire()) == [Message("héllo")]
    assert frame.event() == {"type": "websocket.send", "text": "héllo"}
    assert Outgoing(None, b"\x00").event() == {"type": "websocket.send", "bytes": b"\x00"}


def error_of(data: bytes, max_size: int = 1000, masked: bool = True) -> int:
    with pytest.raises(WsProtocolError) as info:
        FrameDecoder(max_size, masked=masked).feed(data)
    return info.value.code


def test_a_message_over_the_limit_is_1009_from_its_header_alone() -> None:
    header = encode_frame(OP_BINARY, bytes(2000), mask=b"abcd")[:8]  # no payload yet
    assert error_of(header) == 1009
    # fragments count together
    first = encode_frame(OP_TEXT, b"a" * 600, fin=False, mask=b"abcd")
    second = encode_frame(OP_CONT, b"a" * 600, mask=b"abcd")
    assert error_of(first + second) == 1009


def test_text_must_be_utf8_across_fragments() -> None:
    word = "é".encode()  # two bytes, split between fragments: valid once whole
    first = encode_frame(OP_TEXT, word[:1], fin=False, mask=b"abcd")
    second = encode_frame(OP_CONT, word[1:], mask=b"abcd")
    assert FrameDecoder(100).feed(first + second) == [Message("é")]
    assert error_of(encode_frame(OP_TEXT, b"\xff\xfe", mask=b"abcd")) == 1007


@pytest.mark.parametrize(
    ("frame", "masked"),
    [
        (encode_frame(OP_TEXT, b"x"), True),  # a client frame without a mask
        (encode_frame(OP_TEXT, b"x", mask=b"abcd"), False),  # a server frame with one
        (bytes((0xC1, 0x80)) + b"abcd", True),  # a reserved bit
        (encode_frame(0x3, b"", mask=b"abcd"), True),  # an unknown opcode
        (encode_frame(OP_PING, bytes(126), mask=b"abcd"), True),  # a long control frame
        (encode_frame(OP_PING, b"", fin=False, mask=b"abcd"), True),  # a fragmented one
        (encode_frame(OP_CONT, b"x", mask=b"abcd"), True),  # a continuation of nothing
        (
            encode_frame(OP_TEXT, b"x", fin=False, mask=b"abcd")
            + encode_frame(OP_TEXT, b"y", mask=b"abcd"),
            True,
        ),  # a new message inside a fragmented one
        (encode_frame(0x8, b"\x03", mask=b"abcd"), True),  # a 1-byte close payload
        (close_frame(1005, mask=b"abcd"), True),  # a code no one may send
        (close_frame(999, mask=b"abcd"), True),
    ],
)
def test_protocol_errors_are_1002(frame: bytes, masked: bool) -> None:
    assert error_of(frame, masked=masked) == 1002


def test_close_frames() -> None:
    [close] = FrameDecoder(100).feed(close_frame(4001, "bye", mask=b"abcd"))
    assert isinstance(close, Close) and (close.code, close.reason) == (4001, "bye")
    [empty] = FrameDecoder(100).feed(encode_frame(0x8, b"", mask=b"abcd"))
    assert isinstance(empty, Close) and empty.code == 1005
    bad_reason = encode_frame(0x8, b"\x03\xe8\xff", mask=b"abcd")
    assert error_of(bad_reason) == 1007
    long = close_frame(1000, "é" * 100)  # the reason is cut to fit, on a character
    assert len(long) <= 127
    [cut] = FrameDecoder(200, masked=False).feed(long)
    assert isinstance(cut, Close) and cut.reason == "é" * 61


def test_accept_key_is_the_rfcs() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def headers(**values: str) -> object:
    base = {
        "upgrade": "websocket",
        "connection": "keep-alive, Upgrade",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    base.update({k.replace("_", "-"): v for k, v in values.items()})
    return lambda name: base.get(name) or None


def test_handshake_checks() -> None:
    assert check_handshake("GET", "1.1", headers()) == b"dGhlIHNhbXBsZSBub25jZQ=="
    cases = [
        (("POST", "1.1", headers()), 400),
        (("GET", "1.0", headers()), 400),
        (("GET", "1.1", headers(upgrade="h2c")), 400),
        (("GET", "1.1", headers(connection="close")), 400),
        (("GET", "1.1", headers(sec_websocket_key="")), 400),
        (("GET", "1.1", headers(sec_websocket_key="c2hvcnQ=")), 400),  # 5 bytes
        (("GET", "1.1", headers(sec_websocket_version="8")), 426),
        (("GET", "1.1", headers(sec_websocket_version="")), 426),
    ]
    for args, status in cases:
        with pytest.raises(HandshakeError) as info:
            check_handshake(*args)
        assert info.value.status == status, args
    with pytest.raises(HandshakeError) as info:
        check_handshake("GET", "1.1", headers(sec_websocket_version="8"))
    assert info.value.headers == (("sec-websocket-version", "13"),)
