"""The edge's Yjs message parser (examples/collab/_wire.py), sans-IO: what
pycrdt's own encoders write parses back to the same payload, our encoders
write byte for byte what pycrdt's do, and garbage is refused with a
``WireError`` naming the problem and a close code, never another exception."""

import json

import pycrdt
import pytest
from examples.collab import _wire
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import write_var_uint


def _doc_with(texts: list[str]) -> pycrdt.Doc:
    doc: pycrdt.Doc = pycrdt.Doc()
    text = doc.get("content", type=pycrdt.Text)
    for piece in texts:
        text.insert(len(text) // 2, piece)
    return doc


texts = st.lists(st.text(max_size=20), max_size=8)


@settings(max_examples=60, deadline=None)
@given(texts, texts)
def test_pycrdt_messages_round_trip(mine: list[str], theirs: list[str]) -> None:
    doc, other = _doc_with(mine), _doc_with(theirs)
    step1 = pycrdt.create_sync_message(doc)
    assert _wire.parse(step1) == _wire.SyncStep1(doc.get_state())
    assert _wire.encode_sync_step1(doc.get_state()) == step1
    diff = doc.get_update(other.get_state())
    step2 = pycrdt.handle_sync_message(pycrdt.create_sync_message(other)[1:], doc)
    assert step2 is not None
    assert _wire.parse(step2) == _wire.SyncStep2(diff)
    assert _wire.encode_sync_step2(diff) == step2
    update = pycrdt.create_update_message(diff)
    assert _wire.parse(update) == _wire.SyncUpdate(diff)
    assert _wire.encode_update(diff) == update


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=30), min_size=1, max_size=5))
def test_awareness_round_trips(names: list[str]) -> None:
    doc: pycrdt.Doc = pycrdt.Doc()
    awareness = pycrdt.Awareness(doc)
    awareness.set_local_state({"user": {"name": names[0], "color": "#30bced"}})
    update = awareness.encode_awareness_update([doc.client_id])
    message = pycrdt.create_awareness_message(update)
    assert _wire.parse(message) == _wire.AwarenessUpdate(update, (doc.client_id,))
    assert _wire.encode_awareness(update) == message
    assert _wire.parse(_wire.KEEPALIVE) == _wire.AwarenessUpdate(b"\x00", ())
    assert _wire.parse(_wire.encode_query_awareness()) == _wire.QueryAwareness()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_is_refused_cleanly(frame: bytes) -> None:
    try:
        message = _wire.parse(frame)
    except _wire.WireError as exc:
        assert exc.code in (_wire.UNSUPPORTED, _wire.INVALID, _wire.POLICY)
        assert exc.reason
        return
    # What parses is a well-formed message: it encodes back to the same bytes.
    if isinstance(message, _wire.SyncStep1):
        assert _wire.encode_sync_step1(message.state_vector) == frame
    elif isinstance(message, _wire.SyncStep2):
        assert _wire.encode_sync_step2(message.update) == frame
    elif isinstance(message, _wire.SyncUpdate):
        assert _wire.encode_update(message.update) == frame
    elif isinstance(message, _wire.AwarenessUpdate):
        assert _wire.encode_awareness(message.update) == frame
    else:
        assert frame == _wire.encode_query_awareness()


def _awareness(entries: list[tuple[int, int, bytes]]) -> bytes:
    body = write_var_uint(len(entries))
    for client, clock, state in entries:
        body += write_var_uint(client) + write_var_uint(clock) + write_var_uint(len(state)) + state
    return _wire.encode_awareness(body)


@pytest.mark.parametrize(
    ("frame", "code", "words"),
    [
        (b"", _wire.INVALID, "truncated"),
        (b"\x07", _wire.UNSUPPORTED, "unknown message type 7"),
        (b"\x02\x00", _wire.UNSUPPORTED, "auth"),
        (b"\x00\x05\x00", _wire.UNSUPPORTED, "unknown sub-type 5"),
        (b"\x00\x01\x09ab", _wire.INVALID, "claims 9 bytes, 2 left"),
        (b"\x00\x02\x02\x00\x00extra", _wire.INVALID, "5 bytes after its end"),
        (b"\x00\x00\x02\x01\x05", _wire.INVALID, "state vector: truncated"),
        (b"\x00" + b"\xff" * 12, _wire.INVALID, "not a varuint"),
        (b"\x03\x00", _wire.INVALID, "1 bytes after its end"),
        (_awareness([(1, 1, b"{not json")]), _wire.INVALID, "not JSON"),
        (_awareness([(1, 1, json.dumps("x" * 9000).encode())]), _wire.POLICY, "over 8192"),
    ],
)
def test_each_refusal_names_its_problem(frame: bytes, code: int, words: str) -> None:
    with pytest.raises(_wire.WireError) as caught:
        _wire.parse(frame)
    assert caught.value.code == code
    assert words in caught.value.reason


def test_too_many_awareness_states() -> None:
    entries = [(n, 1, b"null") for n in range(_wire.MAX_AWARENESS_STATES + 1)]
    with pytest.raises(_wire.WireError, match="1001 states, over 1000") as caught:
        _wire.parse(_awareness(entries))
    assert caught.value.code == _wire.POLICY
