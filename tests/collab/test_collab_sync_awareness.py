"""The awareness table and its wire format (pure), checked against pycrdt's
own ``Awareness`` (the Yjs encoding), and the updates-per-second window."""

from __future__ import annotations

import json

import pycrdt
import pytest
from examples.collab.sync._awareness import (
    MAX_AWARENESS_STATES,
    AwarenessError,
    AwarenessTable,
    Entry,
    decode,
    encode,
    merge,
)
from examples.collab.sync._rate import RateWindow


def pycrdt_update(client: int, state: dict[str, object] | None) -> bytes:
    """An awareness update as pycrdt (so Yjs) encodes it."""
    awareness = pycrdt.Awareness(pycrdt.Doc(client_id=client))
    awareness.set_local_state(state)
    return awareness.encode_awareness_update([client])


def test_the_wire_format_is_pycrdts() -> None:
    data = pycrdt_update(7, {"user": {"name": "ada", "color": "#f00"}})
    [entry] = decode(data)
    assert entry.client == 7 and json.loads(entry.state)["user"]["name"] == "ada"
    assert encode([entry]) == data
    # And pycrdt reads what the table sends, removals included.
    table = AwarenessTable()
    table.apply(data, "conn-1")
    reader = pycrdt.Awareness(pycrdt.Doc(client_id=1))
    reader.apply_awareness_update(table.encode_all(), "server")
    assert reader.states[7]["user"]["name"] == "ada"
    reader.apply_awareness_update(table.drop_origin("conn-1"), "server")
    assert 7 not in reader.states


def test_clocks_decide_and_a_replay_changes_nothing() -> None:
    table = AwarenessTable()
    assert table.apply(encode([Entry(1, 2, '{"a":2}', "")]), "c") != b""
    assert table.apply(encode([Entry(1, 1, '{"a":1}', "")]), "c") == b""  # older
    assert table.apply(encode([Entry(1, 2, '{"a":2}', "")]), "c") == b""  # the same again
    assert table.states() == {1: '{"a":2}'}
    assert table.apply(encode([Entry(1, 3, "null", "")]), "c") != b""  # the client left
    assert len(table) == 0 and table.encode_all() == b"\x00"


def test_drop_origin_removes_only_what_that_origin_brought() -> None:
    table = AwarenessTable()
    table.apply(encode([Entry(1, 1, "{}", ""), Entry(2, 1, "{}", "")]), "conn-a")
    table.apply(encode([Entry(3, 1, "{}", "")]), "conn-b")
    removed = decode(table.drop_origin("conn-a"))
    assert sorted((e.client, e.clock, e.state) for e in removed) == [(1, 2, "null"), (2, 2, "null")]
    assert table.states() == {3: "{}"}
    assert table.drop_origin("conn-a") == b""


def test_bounds_and_malformed_updates_change_nothing() -> None:
    table = AwarenessTable(max_states=3, max_state_bytes=64)
    table.apply(encode([Entry(i, 1, "{}", "") for i in range(3)]), "c")
    with pytest.raises(AwarenessError, match="at most 3 awareness states"):
        table.apply(encode([Entry(9, 1, "{}", "")]), "c")
    with pytest.raises(AwarenessError, match="MAX_AWARENESS_STATE_BYTES"):
        table.apply(encode([Entry(0, 5, "x" * 65, "")]), "c")
    for bad in (b"", b"\x01", b"\x01\x01\x01\x09ab", b"\x00extra", b"\xff" * 12):
        with pytest.raises(AwarenessError):
            table.apply(bad, "c")
    with pytest.raises(AwarenessError, match="states"):
        decode(b"\xff\xff\x03")  # claims 65,535 states
    assert table.states() == {0: "{}", 1: "{}", 2: "{}"}
    assert MAX_AWARENESS_STATES >= 100  # a room of a hundred editors fits


def test_merge_keeps_the_latest_clock_per_client() -> None:
    merged = merge(
        [encode([Entry(1, 1, '"a"', "")]), encode([Entry(1, 3, '"c"', ""), Entry(2, 1, '"x"', "")])]
    )
    assert {(e.client, e.clock, e.state) for e in decode(merged)} == {(1, 3, '"c"'), (2, 1, '"x"')}


def test_updates_per_second_over_a_sliding_window() -> None:
    window = RateWindow(window=10, start=0.0)
    for i in range(50):
        window.add(i * 0.1)  # 10 per second for 5 s
    assert window.rate(5.0) == pytest.approx(10.0)
    assert window.rate(12.0) == pytest.approx(2.0)  # seconds 3 and 4 still inside
    assert window.rate(30.0) == 0.0


def test_states_not_renewed_expire() -> None:
    table = AwarenessTable()
    table.apply(encode([Entry(1, 1, '"a"', "")]), "conn-a", now=0.0)
    table.apply(encode([Entry(2, 1, '"b"', "")]), "conn-b", now=20.0)
    assert table.expire(now=29.0, timeout=30.0) == b""
    removed = decode(table.expire(now=31.0, timeout=30.0))
    assert [(e.client, e.clock, e.state) for e in removed] == [(1, 2, "null")]
    assert table.states() == {2: '"b"'}
    table.apply(encode([Entry(2, 2, '"b2"', "")]), "conn-b", now=45.0)  # renewed
    assert table.expire(now=60.0, timeout=30.0) == b""
