"""A call's result has its declared type on every node.

The wire names only a reply's top-level type: a list of Structs, a dict of
them, a tuple or an ``ActorRef`` inside a Struct in a list would arrive as
plain lists and dicts. The proxy converts a reply from another node to the
method's return annotation, so the same call gives the same value wherever
the member runs. Two real nodes over TCP on 127.0.0.1.
"""

from __future__ import annotations

import logging

import msgspec
import pytest
import trio

import trouper

COOKIE = b"services-returns-cookie"


class Item(msgspec.Struct, frozen=True):
    n: int
    label: str
    owner: trouper.ActorRef | None = None


class Page(msgspec.Struct, frozen=True):
    items: list[Item]
    after: str | None = None


@trouper.service("returns")
class Catalog(trouper.Actor):
    @trouper.rpc(idempotent=True)
    async def items(self, count: int) -> list[Item]:
        return [Item(i, f"item {i}", self.ctx.self_ref) for i in range(count)]

    @trouper.rpc(idempotent=True)
    async def by_label(self, count: int) -> dict[str, Item]:
        return {f"item {i}": Item(i, f"item {i}") for i in range(count)}

    @trouper.rpc(idempotent=True)
    async def pair(self, n: int) -> tuple[int, str]:
        return n, str(n)

    @trouper.rpc(idempotent=True)
    async def maybe(self, n: int) -> list[Item] | None:
        return [Item(n, "only")] if n else None

    @trouper.rpc(idempotent=True)
    async def page(self) -> Page:
        return Page([Item(1, "one")], after="1")

    @trouper.rpc(idempotent=True)
    async def counts(self) -> dict[str, list[int]]:
        return {"a": [1, 2]}

    @trouper.rpc(idempotent=True)
    async def wrong(self) -> list[Item]:
        return [1, 2]  # type: ignore[list-item]  # a server whose annotation lies


async def test_a_remote_reply_has_the_declared_type_like_a_local_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with trio.fail_after(20):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a,
            trouper.open_node("b", cookie=COOKIE, seeds=a.addresses) as b,
        ):
            await a.wait_for_members(2, timeout=10)
            here = await a.spawn(Catalog, name="catalog")
            there = await b.lookup("catalog", timeout=10)
            local = a.proxy(Catalog, members=[here])
            remote = b.proxy(Catalog, members=[there])

            items = await remote.items(3)
            assert items == await local.items(3)
            assert [type(item) for item in items] == [Item] * 3
            # A ref inside a Struct inside a list is a ref of the caller's node
            # that reaches the member: it can be asked, not only compared.
            assert items[0].owner == there
            assert await b.proxy(Catalog, members=[items[0].owner]).pair(4) == (4, "4")

            assert await remote.by_label(2) == {
                "item 0": Item(0, "item 0"),
                "item 1": Item(1, "item 1"),
            }
            assert await remote.pair(7) == (7, "7")
            assert await remote.maybe(5) == [Item(5, "only")]
            assert await remote.maybe(0) is None
            assert await remote.page() == Page([Item(1, "one")], after="1")
            assert await remote.counts() == {"a": [1, 2]}

            # A reply that does not fit its annotation comes as the wire
            # carried it (as a local call returns it unchecked), and says so.
            with caplog.at_level(logging.WARNING, logger="trouper"):
                assert await remote.wrong() == [1, 2]
            assert "Catalog.wrong: its reply does not fit its return annotation" in caplog.text
