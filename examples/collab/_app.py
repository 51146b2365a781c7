"""The collab application on one node: the session service, the state sync
(directory, documents, the ``StateSync`` service), this node's hub registry
and the gateway (the page, the HTTP routes of both services, and the Yjs
WebSocket at ``/ws``).

    async with trouper.open_node(store="sqlite:///collab.db") as node:
        async with open_collab(node, CollabSettings(port=8000)) as gateway:
            ...  # gateway.url serves the editor

``start_edge`` is the lower level: the hubs and the gateway only, for a node
whose services are started otherwise.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

import trouper
from trouper.web import CORS, GatewayHandle, Routes, WebGateway, start_gateway

from ._edge import KEEPALIVE_INTERVAL, MAX_MESSAGE_BYTES, CollabSession, EdgeSettings
from ._gateways import GatewayAnnouncer, GatewayOrigins, add_gateway_routes
from ._hub import HUB_REGISTRY_NAME, MAX_HUBS_PER_NODE, MAX_SESSIONS_PER_HUB, HubRegistry

log = logging.getLogger("examples.collab")

STATIC = Path(__file__).parent / "static"
#: The page's script, built by `make collab-assets` (never by the server).
BUNDLE = STATIC / "bundle.js"


@attrs.frozen
class CollabSettings:
    """Everything ``open_collab`` starts, and its bounds."""

    host: str = "127.0.0.1"
    port: int = 0
    #: The state sync's store (documents, their logs and snapshots); None: the node's.
    store_url: str | None = None
    #: The session service's store (``redis://...`` keeps AetherFlow's layout); None: the node's.
    sessions_store_url: str | None = None
    #: Seconds an idle document stays loaded before it passivates.
    passivate_after: float = 60.0
    #: Sessions' TTL (a connection's session; None: the service's default).
    session_ttl: float | None = None
    #: Hold a session of the session service per connection.
    sessions: bool = True
    #: Seconds between the keepalives sent to each connection.
    keepalive_interval: float = KEEPALIVE_INTERVAL
    max_message_size: int = MAX_MESSAGE_BYTES
    #: Bytes queued for one client that does not keep up (then dropped, and
    #: after the gateway's slow-consumer timeout the connection is closed).
    outbox_bytes: int = 16 * 1024 * 1024
    max_hubs: int = MAX_HUBS_PER_NODE
    max_sessions_per_hub: int = MAX_SESSIONS_PER_HUB
    static_dir: Path = STATIC


async def start_edge(
    node: trouper.Node, settings: CollabSettings, routes: Routes | None = None
) -> GatewayHandle:
    """This node's hub registry and the gateway, with ``routes``; returns once serving."""
    if not (settings.static_dir / "bundle.js").exists():
        log.warning("%s is missing: run `make collab-assets` to build the page", BUNDLE)
    await node.spawn(
        HubRegistry,
        settings.max_hubs,
        settings.max_sessions_per_hub,
        name=HUB_REGISTRY_NAME,
    )
    routes = routes if routes is not None else Routes()
    add_gateway_routes(routes, node)
    edge = EdgeSettings(
        keepalive_interval=settings.keepalive_interval,
        sessions=settings.sessions,
        session_ttl=settings.session_ttl,
    )
    origins = GatewayOrigins(node)
    config = WebGateway(
        host=settings.host,
        port=settings.port,
        static_dir=settings.static_dir,
        ws_path="/ws",
        max_message_size=settings.max_message_size,
        outbox_bytes=settings.outbox_bytes,
        session=CollabSession,
        session_args=(edge,),
        routes=routes,
        # A page whose node died calls the node its WebSocket moved to.
        cors=CORS(origins=(), allow=origins),
        title="trouper collab",
    )
    gateway = await start_gateway(node, config)
    # Pages learn every node's address from it (GET /api/gateways) to fail over.
    await node.spawn(GatewayAnnouncer, gateway.url, origins)
    return gateway


async def start_collab(node: trouper.Node, settings: CollabSettings) -> GatewayHandle:
    """Spawn the session service, the state sync and the hubs on ``node``,
    and start its gateway serving all of them; returns once serving."""
    from .sessions import add_session_routes, spawn_session_service
    from .sync import add_document_routes, spawn_state_sync

    routes = Routes()
    if settings.sessions:
        await spawn_session_service(node, store_url=settings.sessions_store_url)
        add_session_routes(routes, node)
    await spawn_state_sync(
        node, store_url=settings.store_url, passivate_after=settings.passivate_after
    )
    add_document_routes(routes, node)
    return await start_edge(node, settings, routes)


@asynccontextmanager
async def open_collab(
    node: trouper.Node, settings: CollabSettings = CollabSettings()
) -> AsyncIterator[GatewayHandle]:
    """``async with open_collab(node, settings) as gateway:`` the editor serves in the block."""
    gateway = await start_collab(node, settings)
    try:
        yield gateway
    finally:
        with trio.CancelScope(shield=True):
            await gateway.aclose()
