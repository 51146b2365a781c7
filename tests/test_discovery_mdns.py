"""Discovery on a LAN through zeroconf, on loopback: two nodes announce
themselves and find each other with no seeds, a node of another cluster is
not joined, and one that leaves is forgotten. The TXT record's encoding is
checked on its own."""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import trio
from hypothesis import given
from hypothesis import strategies as st

import trouper
from trouper.services._discovery import Entry
from trouper.services._mdns import entry_of, instance_name, properties

COOKIE = b"mdns-cookie"
FAST = {"heartbeat_interval": 0.1, "acceptable_pause": 0.5, "down_after": 2.0}


def up(n: trouper.Node) -> set[str]:
    return {m.node_id for m in n.members() if m.status == "up"}


async def until(n: trouper.Node, check: Callable[[], bool]) -> None:
    assert n.remote is not None
    while not check():
        with trio.move_on_after(0.1):
            await n.remote.wait_changed()


async def test_two_nodes_find_each_other_over_mdns_on_loopback() -> None:
    # A cluster name of this run's own: other runs on the machine stay apart.
    cluster = f"t{random.Random().getrandbits(40):x}"
    where = f"mdns://{cluster}?interface=127.0.0.1"
    other = f"mdns://{cluster}x?interface=127.0.0.1"

    def opened(name: str, discovery: str) -> AbstractAsyncContextManager[trouper.Node]:
        return trouper.open_node(
            name, cookie=COOKIE, listen="tcp://127.0.0.1:0", discovery=discovery, **FAST
        )

    with trio.fail_after(30):
        async with opened("m1", where) as m1, opened("m0", other) as m0:
            async with opened("m2", where) as m2:
                await until(m1, lambda: up(m1) == {"m1", "m2"})
                await until(m2, lambda: up(m2) == {"m1", "m2"})
                assert up(m0) == {"m0"}
            # m2 said goodbye on the LAN: m1 forgets it (not even "down").
            await until(m1, lambda: {m.node_id for m in m1.members()} == {"m1"})


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=60)
addresses = st.lists(st.text(max_size=80).map(lambda s: f"tcp://{s}"), max_size=16)


@given(names, st.integers(0, 2**63), addresses)
def test_the_txt_record_carries_an_entry(node: str, incarnation: int, urls: list[str]) -> None:
    entry = Entry(node, incarnation, urls)
    props = {k.encode(): v.encode() for k, v in properties("shop", entry).items()}
    assert sum(len(k) + len(v) for k, v in props.items()) <= 1300
    assert all(len(k) + len(v) < 255 for k, v in props.items())
    found = entry_of("shop", props)
    assert found is not None and (found.node, found.incarnation) == (node, incarnation)
    # The addresses that fit, in order; all of them when they are short.
    assert set(found.addresses) <= set(urls)
    short = all(len(u.encode()) <= 250 for u in urls)
    if short and sum(len(u.encode()) + 5 for u in urls) <= 850:
        assert found.addresses == urls
    assert entry_of("other", props) is None
    label = instance_name("shop", node).split(".", 1)[0]
    assert 0 < len(label.encode()) <= 63


def test_a_txt_record_of_another_program_is_ignored() -> None:
    assert entry_of("shop", {b"cluster": b"shop", b"node": b"n1", b"inc": b"x"}) is None
    assert entry_of("shop", {b"cluster": b"shop"}) is None
    assert entry_of("shop", {}) is None
