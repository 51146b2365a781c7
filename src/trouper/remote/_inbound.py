"""What this node does with each envelope a peer sends, once authenticated.

Every handler is synchronous: the link's reader never waits for an actor.
A message for a full mailbox is parked behind it (``Cell.park``) and the
reader moves on; per-destination credit bounds how many tells a peer may
have parked per actor, and ``max_parked`` / ``max_inbound_asks`` bound the
rest (past them the reader pauses, which is local backpressure).

A bad message fails only itself: an unknown type, an undecodable payload,
an unknown target or a request over a limit is answered (an ask gets a
``Failure`` naming the type and the reason) or dead-lettered, and logged;
the link stays up. Only framing garbage or a failed handshake closes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from .. import _errors as errors
from ..actors import PoisonPill
from ..protocols import (
    Ask,
    Credit,
    Failure,
    Gossip,
    GroupUpdate,
    Heartbeat,
    RegistryUpdate,
    Reply,
    Spawn,
    SpawnResult,
    Stop,
    StreamCancel,
    StreamCredit,
    StreamEnd,
    StreamItem,
    StreamOpen,
    Tell,
    Terminated,
    Unwatch,
    Watch,
    WireRef,
)
from ._channels import CHANNEL_HANDLERS
from ._events import EVENT_HANDLERS
from ._peer import RemoteWatcher
from ._streams import (
    on_stream_cancel,
    on_stream_credit,
    on_stream_end,
    on_stream_item,
    on_stream_open,
)
from ._traced import tell_note, traced
from ._wire import failure, unbox

if TYPE_CHECKING:
    from ..runtime import ActorRef, Cell
    from ._peer import Peer

log = logging.getLogger("trouper.remote")


def receive(peer: Peer, env: Any) -> None:
    """Handle one envelope from ``peer``; never raises, never waits."""
    handler = HANDLERS.get(type(env))
    if handler is None:
        bad_message(peer, f"{type(env).__name__} is not expected on a live link")
        return
    try:
        handler(peer, env)
    except Exception as exc:  # a bug of ours; the peer and the link carry on
        log.error(
            "node %s: handling a %s from %s failed: %r",
            peer.remoting.node.id,
            type(env).__name__,
            peer.node_id,
            exc,
            exc_info=exc,
        )


def bad_message(peer: Peer, what: str) -> None:
    """Log a message that failed alone (the first ten, then one in a thousand)."""
    remoting = peer.remoting
    remoting.bad_messages += 1
    count = remoting.bad_messages
    if count <= 10 or count % 1000 == 0:
        log.warning(
            "node %s: bad message from %s (%d so far): %s",
            remoting.node.id,
            peer.node_id,
            count,
            what,
        )


# ----------------------------------------------------------- helpers


def target_of(peer: Peer, wire: WireRef) -> Cell | None:
    if wire.node != peer.remoting.node.id:
        return None
    return peer.remoting.node.kernel.cell_at(wire.path, wire.uid)


def sender_of(peer: Peer, wire: WireRef | None) -> ActorRef | None:
    return None if wire is None else peer.remoting.resolve(wire.node, wire.path, wire.uid)


def decode(peer: Peer, type_name: str, payload: msgspec.Raw) -> Any:
    """The message, or ``UnhandledMessage`` naming its type and what is wrong
    (an unknown type, or bytes that do not fit it)."""
    try:
        return peer.remoting.codec.decode_payload(type_name, payload)
    except errors.RemoteProtocolError as exc:
        raise errors.UnhandledMessage(
            f"node {peer.remoting.node.id} cannot decode a {type_name!r} message: {exc}"
        ) from None


def forbidden(cell: Cell, msg: Any) -> errors.TrouperError | None:
    """Why a peer may not send ``msg`` to ``cell``, or None. A
    ``PoisonPill`` stops only actors under ``/user``, as a remote ``Stop``
    does: the guardians and ``/system`` (remoting itself) are not a peer's
    to stop."""
    if type(msg) is PoisonPill and not cell.ref.path.startswith("/user/"):
        return errors.ConfigurationError(
            f"{cell.ref.path} cannot be stopped from another node (only actors under /user)"
        )
    return None


def dead_letter(peer: Peer, msg: Any, sender: Any, target: Any, reason: str) -> None:
    peer.remoting.node.dead_letters.record(msg, sender, target, reason)


class Admission:
    """Runs when a parked message enters its mailbox (or is rejected)."""

    __slots__ = ("peer", "target")

    def __init__(self, peer: Peer, target: WireRef | None) -> None:
        self.peer = peer
        self.target = target

    def __call__(self) -> None:
        peer = self.peer
        peer.parked_total -= 1
        target = self.target
        if target is not None:
            left = peer.parked[target] - 1
            if left:
                peer.parked[target] = left
            else:
                del peer.parked[target]
            owe(peer, target)
        peer.maybe_resume()


def owe(peer: Peer, target: WireRef) -> None:
    if peer.status == "down":
        return  # nobody to return credit to (a tell parked before it went down)
    n = peer.ledger.owe(target)
    if n:
        peer.send_quiet(Credit(target, n), urgent=True)
    elif len(peer.ledger) > _LEDGER_LIMIT:
        # Tells to many distinct targets (dead ones included) between two
        # ticks: return what is owed now rather than keep an entry for each.
        for key, owed in peer.ledger.flush():
            peer.send_quiet(Credit(key, owed), urgent=True)


#: Targets with credit owed back to one peer, at most, between two flushes.
_LEDGER_LIMIT = 4096


def deliver(peer: Peer, cell: Cell, item: Any, target: WireRef | None) -> bool:
    """Into the mailbox now (True), or parked behind it (False)."""
    if cell.try_deliver(item):
        return True
    if target is not None:
        peer.parked[target] = peer.parked.get(target, 0) + 1
    peer.parked_total += 1
    cell.park(item, Admission(peer, target))
    return False


# ---------------------------------------------------------- messaging


def on_tell(peer: Peer, env: Tell) -> None:
    target = env.target
    cell = target_of(peer, target)
    if cell is None:
        # Not decoded: this node may not even know the type (a ref from
        # before a restart), and nobody will handle it anyway.
        dead_letter(peer, env.type_name, None, target, "no such actor")
        owe(peer, target)
        return
    try:
        msg = decode(peer, env.type_name, env.payload)
    except errors.UnhandledMessage as exc:
        bad_message(peer, f"tell to {target.path}: {exc}")
        dead_letter(peer, env.type_name, None, target, str(exc))
        owe(peer, target)
        return
    if (refused := forbidden(cell, msg)) is not None:
        bad_message(peer, f"tell to {target.path}: {refused}")
        dead_letter(peer, msg, None, cell.ref, str(refused))
        owe(peer, target)
        return
    item = (msg, sender_of(peer, env.sender), tell_note(peer, env))
    if cell.try_deliver(item):
        owe(peer, target)
        return
    if peer.parked.get(target, 0) >= peer.config.tell_window:
        # More than the credit it was given: the sender broke the protocol,
        # and this one message pays for it.
        bad_message(peer, f"tell to {target.path} beyond its credit ({peer.config.tell_window})")
        dead_letter(peer, msg, item[1], cell.ref, "sent beyond its credit")
        return
    deliver(peer, cell, item, target)


class RemoteReply:
    """The reply slot of an ``Ask`` that came over the wire: answered once."""

    __slots__ = ("done", "id", "path", "peer", "trace")  # trace: set by _traced.traced

    def __init__(self, peer: Peer, id: int, path: str) -> None:
        self.peer = peer
        self.id = id
        self.path = path
        self.done = False
        peer.inbound_asks += 1

    def _finish(self) -> bool:
        if self.done:
            return False
        self.done = True
        peer = self.peer
        peer.inbound_asks -= 1
        peer.maybe_resume()
        return True

    def set(self, value: Any) -> None:
        if self.done:
            return
        peer = self.peer
        try:
            name, payload = peer.remoting.encode(value, what="reply", peer=peer)
        except errors.TrouperError as exc:
            self.fail(exc)  # too large, or not a registered type: the asker hears why
            return
        self._finish()
        if peer.status != "down":
            peer.send_now(Reply(self.id, name, payload))

    def fail(self, exc: BaseException) -> None:
        if not self._finish():
            return
        remoting = self.peer.remoting
        self.peer.send_quiet(
            failure(
                self.id,
                exc,
                remoting.node.id,
                self.path,
                tracebacks=remoting.config.remote_tracebacks,
            )
        )


def on_ask(peer: Peer, env: Ask) -> None:
    reply = RemoteReply(peer, env.id, env.target.path)
    cell = target_of(peer, env.target)
    if cell is None:
        reply.fail(errors.ActorDead(f"{env.target.path} is dead (or never lived on this node)"))
        return
    try:
        msg = decode(peer, env.type_name, env.payload)
    except errors.UnhandledMessage as exc:
        bad_message(peer, f"ask of {env.target.path}: {exc}")
        reply.fail(exc)
        return
    if (refused := forbidden(cell, msg)) is not None:
        bad_message(peer, f"ask of {env.target.path}: {refused}")
        reply.fail(refused)
        return
    deliver(peer, cell, (msg, sender_of(peer, env.sender), traced(peer, env, reply)), None)


def _answer(peer: Peer, id: int, settle: Callable[[Any], None]) -> None:
    reply = peer.asks.pop(id, None)
    if reply is not None:
        settle(reply)


def on_reply(peer: Peer, env: Reply) -> None:
    reply = peer.asks.pop(env.id, None)  # (as _answer, without a closure per reply)
    if reply is not None:
        try:
            reply.set(decode(peer, env.type_name, env.payload))
        except errors.UnhandledMessage as exc:
            reply.fail(exc)


def on_failure(peer: Peer, env: Failure) -> None:
    _answer(peer, env.id, lambda reply: reply.fail(unbox(env)))


def on_spawn_result(peer: Peer, env: SpawnResult) -> None:
    ref = peer.remoting.resolve(env.ref.node, env.ref.path, env.ref.uid)
    _answer(peer, env.id, lambda reply: reply.set(ref))


def on_credit(peer: Peer, env: Credit) -> None:
    peer.credit_returned(env.target, env.n)


# ------------------------------------------------------------ watches


def on_watch(peer: Peer, env: Watch) -> None:
    cell = target_of(peer, env.target)
    if cell is None:
        peer.send_quiet(Terminated(env.target, "no such actor"))
        return
    watcher = peer.watched.get(cell)
    if watcher is None:
        if peer.watch_count >= peer.config.max_watches:
            bad_message(peer, f"watch of {env.target.path}: over max_watches")
            peer.send_quiet(
                Terminated(env.target, f"refused: over the limit of {peer.config.max_watches}")
            )
            return
        watcher = RemoteWatcher(peer, cell)
        reason = cell.add_watcher(watcher)
        if reason is not None:
            peer.send_quiet(Terminated(env.target, reason))
            return
        peer.watched[cell] = watcher
    elif peer.watch_count >= peer.config.max_watches:
        return  # the watch it holds already covers this one
    watcher.count += 1
    peer.watch_count += 1


def on_unwatch(peer: Peer, env: Unwatch) -> None:
    cell = target_of(peer, env.target)
    watcher = None if cell is None else peer.watched.get(cell)
    if cell is None or watcher is None:
        return
    watcher.count -= 1
    peer.watch_count -= 1
    if watcher.count <= 0:
        del peer.watched[cell]
        cell.remove_watcher(watcher)


def on_terminated(peer: Peer, env: Terminated) -> None:
    ref = peer.remoting.resolve(env.target.node, env.target.path, env.target.uid)
    for cell in peer.watching.pop(ref, ()):
        cell.watched_stopped(ref, env.reason)


# ------------------------------------------------------------ cluster


def on_heartbeat(peer: Peer, env: Heartbeat) -> None:
    peer.detector.heartbeat(trio.current_time())


def on_gossip(peer: Peer, env: Gossip) -> None:
    peer.remoting.merge_gossip(peer, env.members)


def on_registry(peer: Peer, env: RegistryUpdate) -> None:
    peer.remoting.registry_update(peer, env)


def on_groups(peer: Peer, env: GroupUpdate) -> None:
    peer.remoting.groups.apply(peer, env)


def on_request(peer: Peer, env: Spawn | Stop) -> None:
    peer.remoting.agent_request(peer, env)


HANDLERS: dict[type, Callable[[Peer, Any], None]] = {
    Tell: on_tell,
    Ask: on_ask,
    Reply: on_reply,
    Failure: on_failure,
    SpawnResult: on_spawn_result,
    Credit: on_credit,
    Watch: on_watch,
    Unwatch: on_unwatch,
    Terminated: on_terminated,
    StreamOpen: on_stream_open,
    StreamItem: on_stream_item,
    StreamEnd: on_stream_end,
    StreamCredit: on_stream_credit,
    StreamCancel: on_stream_cancel,
    Spawn: on_request,
    Stop: on_request,
    Heartbeat: on_heartbeat,
    Gossip: on_gossip,
    RegistryUpdate: on_registry,
    GroupUpdate: on_groups,
    **EVENT_HANDLERS,
    **CHANNEL_HANDLERS,
}
