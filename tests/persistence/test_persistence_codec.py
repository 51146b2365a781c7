"""The stored form of events and snapshots: a round trip for any value, the
type name kept with it, and upcast seeing the plain data."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import trouper
import trouper.stores
from trouper.persistence._codec import EventCodec
from trouper.persistence._ownership import MAX_ID_LENGTH, Keys, StaleMarks


@trouper.message(name="codec-test:Moved")
class Moved(msgspec.Struct, frozen=True):
    x: int
    y: float
    label: str
    tags: list[str] = []
    blob: bytes = b""


moves = st.builds(
    Moved,
    x=st.integers(-(2**63), 2**63 - 1),
    y=st.floats(allow_nan=False),
    label=st.text(max_size=50),
    tags=st.lists(st.text(max_size=5), max_size=5),
    blob=st.binary(max_size=64),
)


@given(moves)
def test_events_round_trip(event: Moved) -> None:
    codec = EventCodec()
    assert codec.decode_event("t", codec.encode_event(event), None) == event


@given(moves, st.integers(0, 2**63 - 1))
def test_snapshots_round_trip_with_their_sequence(state: Moved, seq: int) -> None:
    codec = EventCodec()
    assert codec.decode_snapshot("t", codec.encode_snapshot(seq, state), None) == (seq, state)


def test_upcast_sees_the_type_name_and_plain_data() -> None:
    codec = EventCodec()
    record = codec.encode_event(Moved(1, 2.0, "a"))
    seen: list[tuple[str, Any]] = []

    def upcast(name: str, raw: Any) -> Any:
        seen.append((name, raw))
        return None  # decode as registered

    assert codec.decode_event("t", record, upcast) == Moved(1, 2.0, "a")
    assert seen == [("codec-test:Moved", {"x": 1, "y": 2.0, "label": "a", "tags": [], "blob": b""})]
    assert codec.decode_event("t", record, lambda n, r: ("mine", r["x"])) == ("mine", 1)


def test_garbage_and_unknown_types_are_named() -> None:
    codec = EventCodec()
    with pytest.raises(trouper.stores.StoreError, match="where: not an event record"):
        codec.decode_event("where", b"\xc1", None)
    unknown = msgspec.msgpack.encode(["nowhere:Gone", {"a": 1}])
    with pytest.raises(trouper.ConfigurationError, match="nowhere:Gone"):
        codec.decode_event("where", unknown, None)
    with pytest.raises(trouper.ConfigurationError, match="nowhere:Gone"):
        codec.decode_event("where", unknown, lambda n, r: None)


def test_keys_and_stale_marks_are_bounded() -> None:
    keys = Keys("x" * MAX_ID_LENGTH)
    assert all(len(k) <= trouper.stores.MAX_NAME_LENGTH for k in (keys.owner, keys.events))
    for bad in ("", "x" * (MAX_ID_LENGTH + 1), None, 7):
        with pytest.raises(trouper.ConfigurationError, match="persistence_id"):
            Keys(bad)
    marks = StaleMarks(limit=3)
    for i in range(5):
        marks.mark(i)
    assert len(marks) == 3 and 0 not in marks and 4 in marks
