"""The message framing of the session API, sans-IO (``_msg_framing``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trouper import ConfigurationError, FrameTooLarge
from trouper.transports._msg_framing import END, MAX_LIMIT, NOOP, FrameReader, header

messages = st.lists(st.binary(max_size=300), max_size=20)


def encode(batch: list[bytes], end: bool) -> bytes:
    wire = b"".join(header(len(m)) + m for m in batch)
    return wire + (header(None) if end else b"")


def drain(reader: FrameReader) -> list[bytes | object]:
    out: list[bytes | object] = []
    while (item := reader.next()) is not None:
        out.append(item)
        if item is END:
            break
    return out


@settings(max_examples=200, deadline=None)
@given(messages, st.booleans(), st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_any_split_of_the_bytes_gives_back_the_same_messages(
    batch: list[bytes], end: bool, cuts: list[int]
) -> None:
    wire = encode(batch, end)
    reader = FrameReader(300)
    got: list[bytes | object] = []
    position, index = 0, 0
    while position < len(wire):
        step = cuts[index % len(cuts)]
        index += 1
        reader.feed(wire[position : position + step])
        position += step
        got.extend(drain(reader))
    assert got == [*batch, *([END] if end else [])]
    assert reader.mid_message is False or end
    assert reader.buffered == 0


@given(st.integers(301, MAX_LIMIT))
def test_a_header_over_the_limit_is_refused_before_the_body(size: int) -> None:
    reader = FrameReader(300)
    reader.feed(header(size))
    with pytest.raises(FrameTooLarge, match=f"{size} bytes.*300 bytes"):
        reader.next()


def test_a_message_at_the_limit_passes() -> None:
    reader = FrameReader(300)
    reader.feed(header(300) + b"x" * 300)
    assert reader.next() == b"x" * 300


def test_partial_input_says_what_is_missing() -> None:
    reader = FrameReader(100)
    reader.feed(header(10)[:2])
    assert reader.next() is None and reader.mid_message and reader.wanted() == 2
    reader.feed(header(10)[2:] + b"abc")
    assert reader.next() is None and reader.wanted() == 7
    reader.feed(b"defghij")
    assert reader.next() == b"abcdefghij" and not reader.mid_message


def test_after_the_end_mark_nothing_more_is_read() -> None:
    reader = FrameReader(100)
    reader.feed(header(None) + header(1) + b"z")
    assert reader.next() is END
    assert reader.next() is END


@pytest.mark.parametrize("bad", [0, -1, MAX_LIMIT + 1, 1.5, True, "10"])
def test_a_bad_limit_is_a_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="max_message_size"):
        FrameReader(bad)  # type: ignore[arg-type]


def test_no_op_headers_are_skipped() -> None:
    reader = FrameReader(100)
    reader.feed(NOOP + NOOP + header(2) + b"hi" + NOOP)
    assert reader.next() == b"hi"
    assert reader.next() is None and not reader.mid_message
