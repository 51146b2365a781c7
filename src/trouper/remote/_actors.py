"""The system actors of remoting, under ``/system/remote``.

* ``Listener``: one per listening address; accepted connections run in its
  own nursery, so a peer's tasks are always supervised.
* ``Inbound``: serves one accepted connection; ``Link``: dials one address
  and keeps the connection up, redialling with backoff.
* ``ClusterActor``: the ticker (heartbeats, failure detection, gossip) and
  the one that starts links to nodes met through gossip.
* ``Agent``: does what peers ask of this node (spawn, stop), each request in
  its own task in its nursery; every failure becomes an error reply.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from .. import _errors as errors
from ..actors import Actor, handler
from ..protocols import Reply, Spawn, SpawnResult, Stop
from ..supervisors import Backoff
from ..transports import get_transport, parse_address
from ._handshake import Established, handshake
from ._wire import failure, wire_ref

if TYPE_CHECKING:
    from ..runtime import ActorRef
    from ._layer import Remoting
    from ._peer import Peer

log = logging.getLogger("trouper.remote")

#: Redial quickly at first, then every two seconds at most.
REDIAL = Backoff(initial=0.05, maximum=2.0, jitter=0.2)
#: Attempts at a node met through gossip, and never reached, before giving up.
GOSSIP_ATTEMPTS = 5


class _Started:
    """A ``task_status`` that records what ``serve`` bound."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.error: BaseException | None = None
        self.event = trio.Event()

    def started(self, value: Any = None) -> None:
        self.url = value
        self.event.set()


class Listener(Actor):
    """Listens on one address and hands each connection to an ``Inbound``."""

    def __init__(self, remoting: Remoting, url: str, started: _Started) -> None:
        self.remoting = remoting
        self.url = url
        self.started = started

    @classmethod
    async def open(cls, remoting: Remoting, url: str) -> str:
        """Start a listener and return the URL it bound (port 0 resolved)."""
        get_transport(parse_address(url).scheme)  # a bad URL fails here, at once
        started = _Started()
        ref = await remoting.node.kernel.spawn_system(
            "remote", cls, remoting, url, started, restart="permanent"
        )
        await started.event.wait()
        if started.error is not None:
            await remoting.node.stop(ref)
            raise started.error
        assert started.url is not None
        return started.url

    async def on_start(self) -> None:
        self.ctx.start_soon(self._serve)

    async def _serve(self) -> None:
        tls = self.remoting.tls
        try:
            address = parse_address(self.url)
            transport = get_transport(address.scheme)
            await transport.serve(address, self.remoting_accept, tls=tls, task_status=self.started)
        except (OSError, errors.TrouperError) as exc:
            if self.started.event.is_set():
                raise  # it was listening: a failure of the actor, restarted
            self.started.error = exc
            self.started.event.set()

    async def remoting_accept(self, stream: trio.abc.Stream) -> None:
        await accept(self.remoting, stream)


async def accept(remoting: Remoting, stream: trio.abc.Stream) -> None:
    """Authenticate an accepted stream, then serve it in an ``Inbound``
    actor. The stream lives as long as this call (the transport closes it
    when its handler returns), so this waits until the actor is done."""
    config = remoting.config
    if remoting.handshaking >= config.max_handshakes:
        log.warning(
            "node %s: %d connections in the handshake already (max_handshakes); one refused",
            remoting.node.id,
            remoting.handshaking,
        )
        return
    remoting.handshaking += 1
    try:
        established = await handshake(
            stream,
            config,
            node_id=remoting.node.id,
            incarnation=remoting.incarnation,
            initiator=False,
            admit=remoting.admit,
            bind=remoting.binds,
        )
    except errors.TransportError as exc:
        log.warning("node %s refused a connection: %s", remoting.node.id, exc)
        return
    finally:
        remoting.handshaking -= 1
    done = trio.Event()
    try:
        await remoting.node.kernel.spawn_system(
            "remote", Inbound, remoting, stream, established, done
        )
    except errors.TrouperError as exc:
        log.warning("node %s: cannot serve a connection: %s", remoting.node.id, exc)
        return
    await done.wait()


class Inbound(Actor):
    """Serves one connection a peer dialled in; only the dialling side
    redials, so this one just ends with its connection."""

    def __init__(
        self,
        remoting: Remoting,
        stream: trio.abc.Stream,
        established: Established,
        done: trio.Event,
    ) -> None:
        self.remoting = remoting
        self.stream = stream
        self.established = established
        self.done = done

    async def on_start(self) -> None:
        self.ctx.start_soon(self._serve)

    async def on_stop(self) -> None:
        self.done.set()

    async def _serve(self) -> None:
        proto = self.established[0]
        assert proto.peer_id is not None
        try:
            await self.remoting.serve(self.stream, self.established, initiator=proto.peer_id)
        finally:
            self.done.set()
            self.ctx.stop()


class Link(Actor):
    """Dials one address and keeps the connection up, redialling with backoff.

    A seed link (or one made by ``node.connect``) redials for ever, since the
    node behind it may come back as a new incarnation; a link to a node met
    through gossip stops once that node is declared down.
    """

    def __init__(
        self,
        remoting: Remoting,
        url: str,
        seed: bool,
        first: _Started | None,
        peer_id: str | None = None,
        incarnation: int = 0,
    ) -> None:
        self.remoting = remoting
        self.url = url
        self.seed = seed
        #: ``node.connect`` waits on this for the first attempt's outcome.
        self.first = first
        self.peer_id = peer_id
        #: The incarnation gossip told of: an older one being down is no
        #: reason to give up on this one.
        self.incarnation = incarnation

    async def on_stop(self) -> None:
        if self.peer_id is not None and not self.seed:
            self.remoting.linked.discard(self.peer_id)

    async def on_start(self) -> None:
        self.ctx.start_soon(self._run)

    async def _run(self) -> None:
        remoting = self.remoting
        rng = remoting.node.kernel.rng
        attempt = 0
        while True:
            peer = remoting.peers.get(self.peer_id) if self.peer_id else None
            if (
                peer is not None
                and peer.status == "down"
                and not self.seed
                and peer.incarnation >= self.incarnation
            ):
                self.ctx.stop()
                return
            if peer is not None and peer.conn is not None:
                await peer.disconnected.wait()  # connected the other way round
                continue
            failed: errors.TrouperError | None = None
            final = False
            dialled = trio.current_time()
            try:
                async with trio.open_nursery() as nursery:
                    await self._connect_once(nursery)
                    nursery.cancel_scope.cancel()
                # Redial at once only after a connection that was up a while:
                # one the other side cuts right after the handshake (it knows
                # max_peers nodes, or this incarnation is down for it) must
                # not be redialled twenty times a second for ever.
                if trio.current_time() - dialled >= REDIAL.maximum:
                    attempt = 0
            except* errors.TransportError as group:
                failed = group.exceptions[0]  # type: ignore[assignment]
            except* errors.ConfigurationError as group:
                # An address this node can never dial (a bad URL, maybe from
                # gossip, or a scheme it has no settings for): redialling it
                # would only crash-loop this actor's supervisor.
                failed, final = group.exceptions[0], True  # type: ignore[assignment]
            if failed is not None:
                if self.first is not None:
                    # node.connect(): the caller hears why, and nothing redials.
                    self.first.error = failed
                    self.first.event.set()
                    self.ctx.stop()
                    return
                if final or self._hopeless(attempt):
                    log.warning(
                        "link %s -> %s: %s; not dialling it again",
                        remoting.node.id,
                        self.url,
                        failed,
                    )
                    self.ctx.stop()
                    return
                level = (
                    logging.ERROR if isinstance(failed, errors.HandshakeFailed) else logging.DEBUG
                )
                log.log(level, "link %s -> %s: %s", remoting.node.id, self.url, failed)
            await trio.sleep(REDIAL.delay(attempt, rng))
            attempt += 1

    def _hopeless(self, attempt: int) -> bool:
        """A link to a node met only through gossip, which failed
        ``GOSSIP_ATTEMPTS`` times in a row and was never connected: the
        address may be stale or made up by a peer, so the link ends (the next
        gossip offers the node again if it is real)."""
        return (
            not self.seed
            and attempt + 1 >= GOSSIP_ATTEMPTS
            and self.remoting.peers.get(self.peer_id or "") is None
        )

    async def _connect_once(self, nursery: trio.Nursery) -> None:
        remoting = self.remoting
        address = parse_address(self.url)
        transport = get_transport(address.scheme)
        # A connection's background tasks (QUIC's receive loop) live in this
        # nursery: they end with the link at the latest.
        stream = await transport.connect(address, tls=remoting.tls, nursery=nursery)
        try:
            established = await handshake(
                stream,
                remoting.config,
                node_id=remoting.node.id,
                incarnation=remoting.incarnation,
                initiator=True,
                expected=None if self.seed else self.peer_id,
                bind=remoting.binds,
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
            raise
        self.peer_id = established[0].peer_id
        if self.first is not None:
            self.first.started(self.peer_id)
            self.first = None
        await remoting.serve(stream, established, initiator=remoting.node.id)


class Tick:
    """The cluster actor's timer message."""


class Dial:
    """Start a link to a node (an incarnation of it) met through gossip."""

    __slots__ = ("incarnation", "node_id", "url")

    def __init__(self, url: str, node_id: str, incarnation: int) -> None:
        self.url = url
        self.node_id = node_id
        self.incarnation = incarnation


class Undial:
    """Stop the link to a node met through gossip or discovery (its
    discovery entry expired)."""

    __slots__ = ("node_id",)

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id


class ClusterActor(Actor):
    def __init__(self, remoting: Remoting) -> None:
        self.remoting = remoting
        #: The links ``Dial`` started, by node id; those whose link ended
        #: (no longer in ``remoting.linked``) are dropped at the next dial.
        self.links: dict[str, ActorRef] = {}

    async def on_start(self) -> None:
        self.ctx.every(self.remoting.config.heartbeat_interval, Tick())

    @handler
    async def tick(self, msg: Tick) -> None:
        self.remoting.tick()

    @handler
    async def dial(self, msg: Dial) -> None:
        linked = self.remoting.linked
        self.links = {n: ref for n, ref in self.links.items() if n in linked}
        try:
            self.links[msg.node_id] = await self.ctx.spawn(
                Link, self.remoting, msg.url, False, None, msg.node_id, msg.incarnation
            )
        except errors.TrouperError as exc:
            self.remoting.linked.discard(msg.node_id)
            log.warning("node %s: cannot dial %s: %s", self.remoting.node.id, msg.url, exc)

    @handler
    async def undial(self, msg: Undial) -> None:
        ref = self.links.pop(msg.node_id, None)
        if ref is not None:
            self.ctx.stop(ref)
        self.remoting.linked.discard(msg.node_id)


class AgentRequest:
    __slots__ = ("env", "peer")

    def __init__(self, peer: Peer, env: Spawn | Stop) -> None:
        self.peer = peer
        self.env = env


class Agent(Actor):
    """Carries out spawns and stops that peers ask for."""

    def __init__(self, remoting: Remoting) -> None:
        self.remoting = remoting

    @handler
    async def request(self, msg: AgentRequest) -> None:
        self.ctx.start_soon(self._run, msg.peer, msg.env)

    async def _run(self, peer: Peer, env: Spawn | Stop) -> None:
        from ._agent import do_spawn, do_stop

        remoting = self.remoting
        path = "/user" if type(env) is Spawn else env.target.path  # type: ignore[union-attr]
        try:
            if type(env) is Spawn:
                ref = await do_spawn(remoting, env)
                peer.send_quiet(SpawnResult(env.id, wire_ref(ref)))
            else:
                assert isinstance(env, Stop)
                await do_stop(remoting, env)
                name, payload = remoting.encode(None)
                peer.send_quiet(Reply(env.id, name, payload))
        except Exception as exc:  # every failure is an error reply
            tracebacks = remoting.config.remote_tracebacks
            peer.send_quiet(failure(env.id, exc, remoting.node.id, path, tracebacks=tracebacks))
        finally:
            peer.requests -= 1
