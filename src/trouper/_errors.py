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

from typing import ClassVar


class TrouperError(Exception):
    """Base class of every error trouper raises."""

    error_code: ClassVar[str] = "trouper"
    is_retryable: ClassVar[bool] = False
    retry_delay: float | None = None


class ActorError(TrouperError):
    """Something is wrong with an actor in this program."""

    error_code = "actor"


class ActorDead(ActorError):
    """The target actor has stopped; nothing will ever answer."""

    error_code = "actor-dead"


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
    """Bytes from a peer broke the wire protocol."""

    error_code = "protocol-error"


class FrameTooLarge(ProtocolError):
    """A frame announced a length above the configured maximum."""

    error_code = "frame-too-large"


class SupervisionError(TrouperError):
    """A supervisor exceeded its restart intensity and gave up.

    It is chained (``__cause__``) to the last failure that pushed it over.
    """

    error_code = "supervision"


class ConfigurationError(TrouperError):
    """The program asked for something that cannot work."""

    error_code = "configuration"
