"""Schema changes: events stored in an old shape are read back through the
actor's ``upcast(type_name, raw)`` hook into the new shape."""

from __future__ import annotations

from typing import Any

import msgspec
import trio

import trouper
from trouper.protocols import default_registry

NAME = "bank:Deposited"  # the stable wire name both versions are stored under


class DepositedV1(msgspec.Struct, frozen=True):
    amount: int  # whole euros


class DepositedV2(msgspec.Struct, frozen=True):
    cents: int
    currency: str


class Balance(msgspec.Struct, frozen=True):
    pass


class Deposit(msgspec.Struct, frozen=True):
    cents: int


class OldAccount(trouper.PersistentActor):
    persistence_id = "account-7"

    def __init__(self, url: str) -> None:
        self.store_url = url
        self.euros = 0

    def apply(self, event: DepositedV1) -> None:
        self.euros += event.amount

    @trouper.handler
    async def deposit(self, msg: Deposit) -> None:
        await self.persist(DepositedV1(msg.cents // 100))


class NewAccount(trouper.PersistentActor):
    persistence_id = "account-7"

    def __init__(self, url: str) -> None:
        self.store_url = url
        self.cents = 0
        self.upcasts = 0

    def upcast(self, type_name: str, raw: Any) -> Any:
        if type_name == NAME and "amount" in raw:  # the v1 shape
            self.upcasts += 1
            return DepositedV2(cents=raw["amount"] * 100, currency="EUR")
        return None  # the current shape: decoded as registered

    def apply(self, event: DepositedV2) -> None:
        assert isinstance(event, DepositedV2)
        self.cents += event.cents

    @trouper.handler
    async def deposit(self, msg: Deposit) -> None:
        await self.persist(DepositedV2(msg.cents, "EUR"))

    @trouper.handler
    async def balance(self, msg: Balance) -> tuple[int, int]:
        return self.cents, self.upcasts


async def test_old_events_are_upcast_into_the_new_shape(store_url: str) -> None:
    with trio.fail_after(20):
        default_registry.register(DepositedV1, NAME, replace=True)  # the code of last year
        async with trouper.open_node() as node:
            old = await node.spawn(OldAccount, store_url)
            for cents in (500, 1200):
                await old.ask(Deposit(cents))
            await node.stop(old)

        default_registry.register(DepositedV2, NAME, replace=True)  # the code of today
        async with trouper.open_node() as node:
            new = await node.spawn(NewAccount, store_url)
            assert await new.ask(Balance()) == (1700, 2)  # both old events, upcast
            await new.ask(Deposit(99))
            await node.stop(new)
            again = await node.spawn(NewAccount, store_url)  # old and new shapes mixed
            assert await again.ask(Balance()) == (1799, 2)
