"""Actors for the services tests, importable by child node processes
(``services_actors:Member``) as well as by the tests themselves."""

from __future__ import annotations

import msgspec

import trouper


class WhereAreYou(msgspec.Struct, frozen=True):
    pass


class Member(trouper.Actor):
    """A member of the group ``"workers"`` by its class attribute (what
    ``@trouper.service("workers")`` sets)."""

    __trouper_group__ = "workers"

    @trouper.handler
    async def where(self, msg: WhereAreYou) -> str:
        return self.ctx.node.id
