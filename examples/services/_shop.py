"""The shop's actors: the ``Inventory`` service and the ``Ledger``.

Every reservation an ``Inventory`` instance makes is an *effect* the rest of
the shop can see: it tells the ``Ledger`` (on the client's node) before it
answers. The ledger therefore knows exactly which calls ran, and where, even
when a node dies between running a call and answering it: the demo checks
that no order was ever reserved twice.
"""

from __future__ import annotations

import msgspec
import trio

import trouper

#: What each instance has in stock when it starts (per instance: the demo is
#: about calls and failover, not about a shared stock).
STOCK = {"apple": 10_000, "pear": 10_000, "plum": 10_000}


class Reserved(msgspec.Struct, frozen=True):
    """The ledger's record of one reservation that ran."""

    order: str
    sku: str
    qty: int
    where: str


class Entries(msgspec.Struct, frozen=True):
    """Ask the ledger for what it recorded."""


@trouper.service("inventory")
class Inventory(trouper.Actor):
    """One instance of the inventory service (run as many as you like)."""

    def __init__(self, work: float = 0.002) -> None:
        self.work = work
        self.stock = dict(STOCK)
        self.ledger: trouper.ActorRef | None = None

    async def on_start(self) -> None:
        self.ledger = await self.ctx.node.lookup("ledger", timeout=10)

    @trouper.rpc
    async def reserve(self, order: str, sku: str, qty: int) -> str:
        """Take ``qty`` of ``sku`` for ``order``; not idempotent: a retry must
        never run it twice."""
        if qty <= 0 or self.stock.get(sku, 0) < qty:
            raise trouper.InvalidArgument(f"cannot reserve {qty} of {sku!r}")
        await trio.sleep(self.work)  # the slow part: a kill may land here
        self.stock[sku] -= qty
        where = f"{self.ctx.node.id}{self.ctx.self_ref.path}"
        assert self.ledger is not None
        await self.ledger.tell(Reserved(order, sku, qty, where))
        return where

    @trouper.rpc(idempotent=True)
    async def available(self, sku: str) -> int:
        """How much of ``sku`` this instance holds (safe to retry anywhere)."""
        return self.stock.get(sku, 0)


class Ledger(trouper.Actor):
    """Records every reservation that ran, in arrival order."""

    def __init__(self) -> None:
        self.entries: list[Reserved] = []

    @trouper.handler
    async def reserved(self, msg: Reserved) -> None:
        self.entries.append(msg)

    @trouper.handler
    async def list_entries(self, msg: Entries) -> list[Reserved]:
        return list(self.entries)
