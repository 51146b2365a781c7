"""A service for the failover tests, importable by child node processes
(``services_rpc_actors:Ledger``) as well as by the tests themselves."""

from __future__ import annotations

import trouper

ALLOW = ["services_rpc_actors:Ledger"]


@trouper.service("ledger")
class Ledger(trouper.Actor):
    def __init__(self) -> None:
        self.effects = 0

    @trouper.rpc
    async def add(self, n: int) -> str:
        self.effects += n
        return self.ctx.node.id

    @trouper.rpc(idempotent=True)
    async def where(self) -> str:
        return self.ctx.node.id
