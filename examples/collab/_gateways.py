"""Every collab node's gateway address, for pages that fail over.

Each node runs one ``GatewayAnnouncer`` in the cluster-wide group
``collab.gateways``; ``GET /api/gateways`` asks every member for its URL, so
a page learns the other nodes' addresses while its own node is up, and its
WebSocket moves to the next one when its node stops answering. Its sidebar's
HTTP calls follow the WebSocket: ``GatewayOrigins`` lets the cluster's other
gateways in as CORS origins, so a page served by a node that died can still
call the node it moved to.
"""

import math

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
#: Seconds between two lookups of the gateways for an origin not known yet.
ORIGINS_REFRESH = 1.0
#: Seconds between two lookups of the gateways by each node's announcer.
WATCH_EVERY = 5.0
#: Gateways remembered as CORS origins, and for how long after last listed.
MAX_REMEMBERED = 256
FORGET_AFTER = 24 * 3600.0


@trouper.message(name="collab:GatewayUrl")
class GatewayUrl(msgspec.Struct, frozen=True):
    """Replies with the node's gateway URL (``http://host:port``)."""


class Gateways(msgspec.Struct, frozen=True):
    #: This node's gateway first, then the others', as the group lists them.
    gateways: list[str]


class GatewayAnnouncer(trouper.Actor):
    __trouper_group__ = GATEWAYS_GROUP

    def __init__(self, url: str, origins: "GatewayOrigins | None" = None) -> None:
        self.url = url
        self.origins = origins

    async def on_start(self) -> None:
        if self.origins is not None:
            self.origins.own = (self.ctx.self_ref, self.url)
            self.ctx.start_soon(self._watch, self.origins)

    async def _watch(self, origins: "GatewayOrigins") -> None:
        # Learn the other gateways while they are up: once one dies, its
        # pages call this node, and their origin must be known by then.
        while True:
            await origins.refresh()
            await trio.sleep(WATCH_EVERY)

    @trouper.handler
    async def gateway_url(self, msg: GatewayUrl) -> str:
        return self.url


async def gateway_urls(
    node: trouper.Node, known: tuple[trouper.ActorRef, str] | None = None
) -> list[str]:
    """The gateways of the cluster's collab nodes (this one first), each
    asked for its URL at once; one that does not answer is left out.
    ``known``: an announcer and its URL, not asked (the announcer itself
    calls this, and an actor cannot ask itself)."""
    members = node.registry.members(GATEWAYS_GROUP)[:MAX_GATEWAYS]
    found: dict[int, str] = {}

    async def ask(index: int, member: trouper.ActorRef) -> None:
        if known is not None and member == known[0]:
            found[index] = known[1]
            return
        try:
            found[index] = await member.ask(GatewayUrl(), timeout=ASK_TIMEOUT)
        except (trouper.ActorError, trouper.TransportError):
            pass  # gone or going: not a gateway to move to

    async with trio.open_nursery() as nursery:
        for index, member in enumerate(members):
            nursery.start_soon(ask, index, member)
    return [found[i] for i in sorted(found)]


class GatewayOrigins:
    """``CORS(allow=...)`` for the cluster's gateways, past and present: an
    origin is let in if it is the URL of a gateway this node has seen listed.
    A page's origin is its node's gateway, and that node may be the one that
    died (its page then calls another node), so gateways that left are still
    let in, until ``FORGET_AFTER`` seconds after they were last listed; at
    most ``MAX_REMEMBERED`` are kept (the least recently listed go first).

    The node's ``GatewayAnnouncer`` looks the gateways up every
    ``WATCH_EVERY`` seconds; an unknown origin makes a lookup too, at most
    once per ``ORIGINS_REFRESH`` seconds (a flood of made-up origins costs
    one lookup per period). A gateway serving on 0.0.0.0 names itself by
    that address, which no page's origin is: give such nodes a host pages
    reach them by."""

    def __init__(self, node: trouper.Node) -> None:
        self.node = node
        self.seen: dict[str, float] = {}  # URL -> when last listed, oldest first
        self.next_lookup = -math.inf
        self.lookup: trio.Event | None = None
        #: This node's announcer and URL, once it runs.
        self.own: tuple[trouper.ActorRef, str] | None = None

    def remember(self, urls: list[str], now: float) -> None:
        for url in urls:
            self.seen.pop(url, None)
            self.seen[url] = now
        while self.seen:
            oldest, listed = next(iter(self.seen.items()))
            if len(self.seen) <= MAX_REMEMBERED and listed >= now - FORGET_AFTER:
                break
            del self.seen[oldest]

    async def refresh(self) -> None:
        """Look the gateways up; a call while one is under way shares it."""
        if self.lookup is not None:
            await self.lookup.wait()
            return
        self.lookup = done = trio.Event()
        try:
            self.remember(await gateway_urls(self.node, self.own), trio.current_time())
        finally:
            self.lookup = None
            done.set()

    async def __call__(self, origin: str) -> bool:
        if origin in self.seen:
            return True
        now = trio.current_time()
        if self.lookup is None and now < self.next_lookup:
            return False
        if self.lookup is None:
            self.next_lookup = now + ORIGINS_REFRESH
        await self.refresh()
        return origin in self.seen


def add_gateway_routes(routes: Routes, node: trouper.Node) -> None:
    """``GET /api/gateways``: the URLs of every collab node's gateway."""

    @routes.route("/api/gateways", name="gateways", tags=["collab"])
    async def gateways() -> Gateways:
        """The gateways of the cluster's collab nodes (this one first)."""
        return Gateways(await gateway_urls(node))
