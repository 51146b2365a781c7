"""Every collab node's gateway address, for pages that fail over.

Each node runs one ``GatewayAnnouncer`` in the cluster-wide group
``collab.gateways``; ``GET /api/gateways`` asks every member for its URL, so
a page learns the other nodes' addresses while its own node is up, and its
WebSocket moves to the next one when its node stops answering (the page's
HTTP calls stay on the node that served it).
"""

import msgspec
import trio

import trouper
from trouper.web import Routes

#: The group every node's announcer joins.
GATEWAYS_GROUP = "collab.gateways"
#: Seconds one member may take to say its URL; a slower one is left out.
ASK_TIMEOUT = 1.0
#: Gateways listed at most (a cluster bigger than this lists the first ones).
MAX_GATEWAYS = 64


@trouper.message(name="collab:GatewayUrl")
class GatewayUrl(msgspec.Struct, frozen=True):
    """Replies with the node's gateway URL (``http://host:port``)."""


class Gateways(msgspec.Struct, frozen=True):
    #: This node's gateway first, then the others', as the group lists them.
    gateways: list[str]


class GatewayAnnouncer(trouper.Actor):
    __trouper_group__ = GATEWAYS_GROUP

    def __init__(self, url: str) -> None:
        self.url = url

    @trouper.handler
    async def gateway_url(self, msg: GatewayUrl) -> str:
        return self.url


def add_gateway_routes(routes: Routes, node: trouper.Node) -> None:
    """``GET /api/gateways``: the URLs of every collab node's gateway."""

    @routes.route("/api/gateways", name="gateways", tags=["collab"])
    async def gateways() -> Gateways:
        """The gateways of the cluster's collab nodes (this one first)."""
        members = node.registry.members(GATEWAYS_GROUP)[:MAX_GATEWAYS]
        found: dict[int, str] = {}

        async def ask(index: int, member: trouper.ActorRef) -> None:
            try:
                found[index] = await member.ask(GatewayUrl(), timeout=ASK_TIMEOUT)
            except (trouper.ActorError, trouper.TransportError):
                pass  # gone or going: not a gateway to move to

        async with trio.open_nursery() as nursery:
            for index, member in enumerate(members):
                nursery.start_soon(ask, index, member)
        return Gateways([found[i] for i in sorted(found)])
