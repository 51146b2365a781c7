"""The system actors of remoting: a link per dialled address, and the cluster
ticker. Both are ordinary supervised actors under ``/system``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from .. import _errors as errors
from ..actors._actor import Actor, handler
from ..supervisors._strategy import Backoff

if TYPE_CHECKING:
    from ..protocols import Connection as ProtoConnection
    from ..protocols import FrameDecoder
    from ..protocols._envelopes import Envelope
    from ._remote import Remoting

log = logging.getLogger("trouper.remote")

#: Redial quickly at first, then every two seconds at most.
REDIAL = Backoff(initial=0.05, maximum=2.0, jitter=0.2)

Established = tuple[trio.abc.Stream, "ProtoConnection", "FrameDecoder", "list[Envelope]"]


class Link(Actor):
    """Dials one address and keeps the connection up, redialling with backoff.

    A seed link (or one made by ``node.connect``) redials forever, since the
    node behind it may come back with a new incarnation; a link to a node met
    through gossip stops once that node is declared down.
    """

    def __init__(
        self,
        remoting: Remoting,
        url: str,
        seed: bool,
        established: Established | None,
        peer_id: str | None = None,
    ) -> None:
        self.remoting = remoting
        self.url = url
        self.seed = seed
        self.established = established
        self.peer_id = peer_id

    async def on_stop(self) -> None:
        if self.peer_id is not None:
            self.remoting.linked.discard(self.peer_id)

    async def on_start(self) -> None:
        self.ctx.start_soon(self._run)

    async def _run(self) -> None:
        remoting = self.remoting
        rng = remoting.node._rng
        attempt = 0
        while True:
            peer = remoting.peers.get(self.peer_id) if self.peer_id else None
            if peer is not None and peer.status == "down" and not self.seed:
                self.ctx.stop()
                return
            if peer is not None and peer.conn is not None:
                await peer.disconnected.wait()  # connected the other way round
                continue
            try:
                await self._connect_once()
                attempt = 0
            except errors.TransportError as exc:
                level = logging.ERROR if isinstance(exc, errors.HandshakeFailed) else logging.DEBUG
                log.log(level, "link %s -> %s: %s", remoting.node.id, self.url, exc)
            await trio.sleep(REDIAL.delay(attempt, rng))
            attempt += 1

    async def _connect_once(self) -> None:
        remoting = self.remoting
        if self.established is not None:
            stream, proto, decoder, leftover = self.established
            self.established = None
        else:
            stream = await remoting.dial(self.url)
            try:
                proto, decoder, leftover = await remoting.handshake(
                    stream, initiator=True, expected=None if self.seed else self.peer_id
                )
            except BaseException:
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)
                raise
        self.peer_id = proto.peer_id
        await remoting.serve(stream, proto, decoder, leftover, initiator=remoting.node.id)


class Inbound(Actor):
    """Serves one connection a peer dialled in, as a supervised actor.

    The listener's handler waits on ``done``: the transport closes the stream
    when its handler returns, so the stream lives exactly as long as this
    actor serves it. Only the dialling side redials; this one just ends.
    """

    def __init__(self, remoting: Remoting, established: Established, done: trio.Event) -> None:
        self.remoting = remoting
        self.established = established
        self.done = done

    async def on_start(self) -> None:
        self.ctx.start_soon(self._serve)

    async def on_stop(self) -> None:
        self.done.set()

    async def _serve(self) -> None:
        stream, proto, decoder, leftover = self.established
        assert proto.peer_id is not None
        try:
            await self.remoting.serve(stream, proto, decoder, leftover, initiator=proto.peer_id)
        finally:
            self.done.set()
            self.ctx.stop()


class Tick:
    """The cluster actor's timer message."""


class ClusterActor(Actor):
    """Sends heartbeats and gossip and runs failure detection, on a timer."""

    def __init__(self, remoting: Remoting) -> None:
        self.remoting = remoting

    async def on_start(self) -> None:
        self.ctx.every(self.remoting.config.heartbeat_interval, Tick())

    @handler
    async def tick(self, msg: Tick) -> None:
        self.remoting.tick()
