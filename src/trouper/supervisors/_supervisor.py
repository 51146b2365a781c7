"""``Supervisor``: the static, OTP-style supervisor, an actor like any other."""

from __future__ import annotations

from collections.abc import Sequence

from ..actors._actor import Actor
from ._strategy import ChildSpec, OneForOne, Strategy


class Supervisor(Actor):
    """Starts ``children`` in order (each ``on_start`` finishing before the
    next begins) and supervises them with ``strategy``. Stopping it stops them
    in reverse order. A restart of the supervisor itself starts fresh ones."""

    def __init__(self, children: Sequence[ChildSpec], strategy: Strategy | None = None) -> None:
        self.specs = list(children)
        self.supervision = strategy or OneForOne()

    async def on_start(self) -> None:
        for spec in self.specs:
            await self.ctx.spawn(spec)
