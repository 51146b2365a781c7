"""The subscriber queue (pure): whatever the pushes and pops, a subscriber
that applies what it pops ends with the document's state, and the queue
stays within its bounds."""

from __future__ import annotations

import pycrdt
from examples.collab.sync._awareness import Entry, decode, encode
from examples.collab.sync._fanout import SubscriberQueue
from hypothesis import given, settings
from hypothesis import strategies as st

# (kind, editor, position, text length, seconds passed)
OPS = st.lists(
    st.tuples(
        st.sampled_from(["edit", "edit", "edit", "pop", "awareness", "big"]),
        st.integers(0, 2),
        st.integers(0, 1000),
        st.integers(1, 8),
        st.sampled_from([0.0, 0.0, 0.01, 0.5, 3.0]),
    ),
    min_size=5,
    max_size=80,
)


def state_vector(doc: pycrdt.Doc) -> dict[int, int]:
    """The state vector as a dict (its encoding's order is the map's)."""
    data = doc.get_state()
    pos = 0

    def uint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    return dict((uint(), uint()) for _ in range(uint()))


@settings(max_examples=100, deadline=None)
@given(ops=OPS, max_events=st.integers(2, 12), lag=st.sampled_from([1.0, 5.0, 1000.0]))
def test_a_subscriber_converges_whatever_it_is_sent(
    ops: list[tuple[str, int, int, int, float]], max_events: int, lag: float
) -> None:
    server = pycrdt.Doc(client_id=100)  # fixed ids: a reproducible run
    editors = [pycrdt.Doc(client_id=i + 1) for i in range(3)]
    subscriber = pycrdt.Doc(client_id=200)
    seen_awareness: dict[int, int] = {}
    queue = SubscriberQueue(max_events=max_events, max_bytes=400, resync_bytes=900, max_lag=lag)
    now = 0.0
    version = 0
    clocks = [0, 0, 0]

    def pop_one() -> bool:
        item = queue.pop(now)
        if item is None:
            return False
        if item.kind == "resync":
            subscriber.apply_update(server.get_update())  # the state when popped
        elif item.kind == "update":
            subscriber.apply_update(item.data)
        else:
            for entry in decode(item.data):
                assert entry.clock >= seen_awareness.get(entry.client, 0)
                seen_awareness[entry.client] = entry.clock
        return True

    for kind, who, position, length, passed in ops:
        now += passed
        if kind == "pop":
            pop_one()
            continue
        if kind == "awareness":
            clocks[who] += 1
            data = encode([Entry(who, clocks[who], f'{{"n":{clocks[who]}}}', "")])
            queue.push("awareness", data, f"c{who}", version, now)
            continue
        editor = editors[who]
        editor.apply_update(server.get_update(editor.get_state()))  # it saw some of it
        text = editor.get("content", type=pycrdt.Text)
        before = editor.get_state()
        chars = ("z" * 300) if kind == "big" else "abcdefgh"[:length]
        text.insert(position % (len(str(text)) + 1), chars)
        update = editor.get_update(before)
        server.apply_update(update)
        version += 1
        queue.push("update", update, f"c{who}", version, now)
        assert len(queue) <= max_events + 1  # merged events, at most one resync
        assert queue.queued_bytes <= max(900, 400) + 300 * 2
    while pop_one():
        pass
    assert len(queue) == 0 and queue.queued_bytes == 0
    content = subscriber.get("content", type=pycrdt.Text)
    assert str(content) == str(server.get("content", type=pycrdt.Text))
    assert state_vector(subscriber) == state_vector(server)
    assert seen_awareness == {i: clocks[i] for i in range(3) if clocks[i]}


def test_a_backlog_is_merged_and_keeps_the_single_origin() -> None:
    server = pycrdt.Doc()
    text = server.get("content", type=pycrdt.Text)
    queue = SubscriberQueue(max_events=4)
    for i in range(10):
        before = server.get_state()
        text += str(i)
        queue.push("update", server.get_update(before), "ada", i + 1, 0.0)
    assert queue.merged >= 1 and queue.resyncs == 0
    items = []
    while (item := queue.pop(0.0)) is not None:
        items.append(item)
    assert len(items) < 10 and {item.origin for item in items} == {"ada"}
    assert items[-1].version == 10
    copy = pycrdt.Doc()
    for item in items:
        copy.apply_update(item.data)
    assert str(copy.get("content", type=pycrdt.Text)) == "0123456789"


def test_a_lagging_subscriber_gets_one_resync_and_nothing_it_covers() -> None:
    queue = SubscriberQueue(max_events=100, max_lag=2.0)
    queue.push("update", b"\x00\x00", "a", 1, 0.0)
    queue.push("update", b"\x00\x00", "a", 2, 3.0)  # the first has waited 3 s
    queue.push("update", b"\x00\x00", "a", 3, 3.5)  # covered by the pending resync
    item = queue.pop(4.0)
    assert item is not None and item.kind == "resync"
    assert queue.pop(4.0) is None and queue.resyncs == 1
