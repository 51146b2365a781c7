"""The service the services cases call, on this node or a child node process
(``allow_spawn=["benchmarks.cases.service_actors:*"]``)."""

from __future__ import annotations

import trouper
from benchmarks.cases._messages import Ping


@trouper.service("bench-echo")
class EchoService(trouper.Actor):
    """Answers a Ping with itself, both as a plain handler (the baseline's
    ask) and as an rpc method (the proxy's call): the same actor either way."""

    @trouper.handler
    async def ping(self, msg: Ping) -> Ping:
        return msg

    @trouper.rpc
    async def echo(self, ping: Ping) -> Ping:
        return ping
