"""The one error hierarchy of trouper.

Errors are split by who caused them, as trio splits ``ClosedResourceError``
(your code closed it) from ``BrokenResourceError`` (the world broke it):

* ``ActorError``: something about an actor in *this* program (it is dead, its
  mailbox is full, nobody handles that message...).
* ``RemoteError``: a failure raised inside an actor on another node, boxed.
* ``TransportError``: the network or the peer broke something.
* ``SupervisionError``: a supervisor gave up (restart intensity exceeded).
* ``ConfigurationError``: the program asked for something that cannot work.

Every error carries ``error_code`` (stable, for logs and the wire),
``is_retryable`` and ``retry_delay`` so callers and the service proxies can
decide without parsing messages.
"""

from __future__ import annotations

from typing import ClassVar, Self


class TrouperError(Exception):
    """Base class of every error trouper raises.

    ``with_operation`` and ``with_session`` add context (what was being done,
    for whom) without changing the error's type, so ``except`` clauses and
    ``is_retryable`` keep working on the annotated error.
    """

    error_code: ClassVar[str] = "trouper"
    is_retryable: ClassVar[bool] = False
    retry_delay: float | None = None
    operation: str | None = None
    session: str | None = None

    def with_operation(self, name: str) -> Self:
        """Record the operation that failed (``"ask"``, ``"spawn"``...); returns self."""
        self.operation = name
        return self

    def with_session(self, id: str) -> Self:
        """Record the session (or peer, or connection) concerned; returns self."""
        self.session = id
        return self

    def __str__(self) -> str:
        text = super().__str__()
        context = [
            f"{k}={v}" for k, v in (("operation", self.operation), ("session", self.session)) if v
        ]
        return f"{text} [{', '.join(context)}]" if context else text


class ActorError(TrouperError):
    """Something is wrong with an actor in this program."""

    error_code = "actor"


class ActorDead(ActorError):
    """The target actor has stopped; nothing will ever answer."""

    error_code = "actor-dead"


class ActorKilled(ActorError):
    """The actor was killed on purpose (the admin API's ``kill``): a failure
    its supervisor handles like any other."""

    error_code = "actor-killed"


class ActorNotFound(ActorError):
    """No actor is registered under that name (within the timeout)."""

    error_code = "actor-not-found"
    is_retryable = True
    retry_delay = 0.1


class UnhandledMessage(ActorError):
    """The actor has no handler for the message's type (nor a ``receive``)."""

    error_code = "unhandled-message"


class MailboxFull(ActorError):
    """``tell_nowait`` found the mailbox at its bound."""

    error_code = "mailbox-full"
    is_retryable = True
    retry_delay = 0.001


class AskTimeout(ActorError, TimeoutError):
    """No reply arrived within the ask's timeout."""

    error_code = "ask-timeout"
    is_retryable = True


class NameTaken(ActorError):
    """Another live actor on this node already has that name."""

    error_code = "name-taken"


class SpawnRefused(ActorError):
    """The actor could not be started (its ``on_start`` failed, or the node
    refused a remote spawn)."""

    error_code = "spawn-refused"


class SubscriberOverflow(ActorError):
    """An event subscriber with the ``"disconnect"`` policy fell a whole
    buffer behind: it was unsubscribed, and its iteration ends with this."""

    error_code = "subscriber-overflow"


class ChannelClosed(ActorError):
    """A two-way channel ended abnormally: the other side cancelled it,
    failed, stopped or went away (the message names the cause, chained as
    ``__cause__`` when known), or this side used it after closing it."""

    error_code = "channel-closed"


class RemoteError(TrouperError):
    """A failure raised inside an actor on another node.

    The original exception cannot cross the wire (no pickle, ever), so it
    arrives boxed: its type name, message and traceback text, plus where it
    happened.
    """

    error_code = "remote"

    def __init__(
        self,
        type_name: str,
        message: str,
        traceback: str = "",
        node: str = "",
        path: str = "",
    ) -> None:
        super().__init__(f"{type_name}: {message} (in {path} on {node})")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        self.node = node
        self.path = path


class TransportError(TrouperError):
    """The network or the peer broke something."""

    error_code = "transport"


class NodeDown(TransportError):
    """The node that hosts the target went down (or was declared down)."""

    error_code = "node-down"
    is_retryable = True
    retry_delay = 0.5


class ConnectionLost(TransportError):
    """A connection to a peer broke while it was in use."""

    error_code = "connection-lost"
    is_retryable = True
    retry_delay = 0.1


class HandshakeFailed(TransportError):
    """The peer failed the handshake: wrong cookie, version or identity."""

    error_code = "handshake-failed"


class ProtocolError(TransportError):
    """The wire protocol was broken: see who broke it in the two subclasses."""

    error_code = "protocol-error"


class LocalProtocolError(ProtocolError):
    """*We* broke the protocol: our own encoder or state machine refused what
    this node was about to send. The peer did nothing wrong (h11's split)."""

    error_code = "local-protocol-error"


class RemoteProtocolError(ProtocolError):
    """The *peer's* bytes broke the protocol: garbage, a truncated or oversize
    frame, an envelope out of turn. Only that connection is closed."""

    error_code = "remote-protocol-error"


class FrameTooLarge(TransportError):
    """A message is too large for ``max_frame_size``: refused at the sender,
    before anything is written, and the link stays up."""

    error_code = "frame-too-large"


class SendTimeout(TransportError, TimeoutError):
    """A message could not be queued in time: the session's send buffer
    stayed full (a slow or stuck reader). Nothing of it was sent, and the
    session stays open."""

    error_code = "send-timeout"
    is_retryable = True
    retry_delay = 0.1


class DiscoveryUnavailable(TransportError):
    """The discovery service (Redis, mDNS) could not be reached or failed;
    the node keeps its links and tries again with backoff."""

    error_code = "discovery-unavailable"
    is_retryable = True
    retry_delay = 1.0


class SupervisionError(TrouperError):
    """A supervisor exceeded its restart intensity and gave up.

    It is chained (``__cause__``) to the last failure that pushed it over.
    """

    error_code = "supervision"


class ConfigurationError(TrouperError):
    """The program asked for something that cannot work."""

    error_code = "configuration"


class CallError(TrouperError):
    """A service call (``trouper.service`` / ``node.proxy``) was refused or
    could not be made; the subclasses say why."""

    error_code = "call"

    def __init__(self, message: str, *, retry_delay: float | None = None) -> None:
        super().__init__(message)
        if retry_delay is not None:
            self.retry_delay = retry_delay


class InvalidArgument(CallError):
    """The arguments of a call do not fit the method (wrong type, missing,
    unknown), or its metadata is out of bounds; nothing ran."""

    error_code = "invalid-argument"


class CircuitOpen(CallError):
    """Every member's circuit breaker is open; ``retry_delay`` is the time
    left until one lets a probe through. Nothing was sent."""

    error_code = "circuit-open"
    is_retryable = True


class Unauthorized(CallError):
    """The call's token is missing, invalid, expired, or lacks a role the
    method needs; nothing ran."""

    error_code = "unauthorized"


class Forbidden(Unauthorized):
    """The caller is who it says (its token is valid) but lacks a role the
    operation needs; nothing ran. The web gateway answers it with 403,
    other ``Unauthorized`` errors with 401."""

    error_code = "forbidden"


class RateLimited(CallError):
    """The caller is over its rate limit; ``retry_delay`` says when a call
    would pass. Nothing ran."""

    error_code = "rate-limited"
    is_retryable = True


class PoolError(TrouperError):
    """A pool (``trouper.pools``) could not lend a member."""

    error_code = "pool"


class PoolTimeout(PoolError, TimeoutError):
    """No member of the pool came free within the checkout timeout.

    Retryable: the pool grows under pressure, and members are returned as
    their holders finish. The message names the pool and, when members
    failed to open, the last error.
    """

    error_code = "pool-timeout"
    is_retryable = True
    retry_delay = 0.05


class PoolClosed(PoolError):
    """The pool is draining or closed; it lends nothing any more."""

    error_code = "pool-closed"
