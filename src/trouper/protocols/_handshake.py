"""The sans-IO connection: mutual authentication, then a guard on traffic.

Message sequence (``I`` initiator, ``A`` acceptor)::

    I -> A  Hello(version, node_i, incarnation_i, nonce_i)
    A -> I  Challenge(version, node_a, incarnation_a, nonce_a)
    I -> A  Welcome(proof_i)    proof_i = HMAC(cookie, transcript("initiator"))
    A -> I  Welcome(proof_a)    proof_a = HMAC(cookie, transcript("acceptor"))

``transcript(prover)`` is the msgpack encoding of the protocol label, the
prover's role, the version and both sides' (node id, incarnation, nonce). So:

* the cookie never crosses the wire, only HMAC-SHA256 digests keyed by it;
* a proof is bound to both fresh nonces and both identities, so it cannot be
  replayed on another connection, nor reflected back (the role is in it);
* the acceptor proves itself *last*, only to an initiator that already proved
  it knows the cookie, so a stranger who connects learns no digest it could
  use to guess the cookie offline. The initiator, which chose whom to dial,
  proves first;
* with a channel ``binding`` (bytes both ends derive from the secure channel
  under them, see ``trouper.transports.channel_binding``) the transcript ends
  with it, so proofs made on one channel are worthless on another: a man in
  the middle who relays the handshake between two TLS sessions of his own
  makes the two ends bind to different channels, and the proofs fail.
  Without a binding the transcript is as it always was.

The acceptor is ESTABLISHED once it has sent its Welcome and may pipeline data
right behind it; the initiator is ESTABLISHED once it has checked that Welcome.
Randomness comes from the caller (``nonce``), so runs are reproducible.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar, NoReturn

import msgspec

from trouper._errors import ConfigurationError, HandshakeFailed, LocalProtocolError

from ._envelopes import Challenge, Envelope, Goodbye, Hello, Welcome
from ._state import ConnectionState, ConnState, Direction, Event, Role, event_of

__all__ = [
    "MIN_NONCE_SIZE",
    "PROTOCOL_VERSION",
    "AcceptorConnection",
    "Connection",
    "InitiatorConnection",
]

PROTOCOL_VERSION = 2
MIN_NONCE_SIZE = 16
MAX_NONCE_SIZE = 64
_LABEL = "trouper-handshake"
_transcript_encoder = msgspec.msgpack.Encoder()

_SEND, _RECV = Direction.SEND, Direction.RECEIVE


class _Party(msgspec.Struct, frozen=True, array_like=True):
    node: str
    incarnation: int
    nonce: bytes


def compute_proof(
    cookie: bytes,
    prover: Role,
    version: int,
    initiator: _Party,
    acceptor: _Party,
    binding: bytes = b"",
) -> bytes:
    parts: tuple[object, ...] = (_LABEL, prover.value, version, initiator, acceptor)
    if binding:
        parts += (binding,)
    transcript = _transcript_encoder.encode(parts)
    return hmac.new(cookie, transcript, hashlib.sha256).digest()


class Connection:
    """One side of a peer connection, at the envelope level.

    Feed every envelope received to ``receive`` and send what it returns; ask
    ``send`` before sending anything yourself. Handshake envelopes are built
    here; data envelopes are only checked (the caller routes them). Wrong
    cookie, version or identity raise ``HandshakeFailed``; envelopes out of
    order raise ``RemoteProtocolError`` (received) or ``LocalProtocolError``
    (sent). Either way the state becomes ``ERROR``, and
    ``close()`` still returns a ``Goodbye`` to tell the peer why.
    """

    role: ClassVar[Role]

    __slots__ = (
        "_binding",
        "_cookie",
        "_peer",
        "_state",
        "incarnation",
        "max_frame",
        "node_id",
        "nonce",
        "peer_goodbye",
        "peer_id",
        "peer_incarnation",
        "peer_max_frame",
        "version",
    )

    def __init__(
        self,
        *,
        node_id: str,
        incarnation: int,
        cookie: bytes,
        nonce: bytes,
        version: int = PROTOCOL_VERSION,
        max_frame: int = 0,
        binding: bytes = b"",
    ) -> None:
        if type(self) is Connection:
            raise TypeError("use InitiatorConnection or AcceptorConnection")
        if not node_id:
            raise ConfigurationError("node_id cannot be empty")
        if not cookie:
            raise ConfigurationError("the cluster cookie cannot be empty")
        if not MIN_NONCE_SIZE <= len(nonce) <= MAX_NONCE_SIZE:
            raise ConfigurationError(
                f"nonce must be {MIN_NONCE_SIZE} to {MAX_NONCE_SIZE} random bytes"
            )
        self.node_id = node_id
        self.incarnation = incarnation
        self.nonce = nonce
        self.version = version
        self._cookie = cookie
        self._binding = binding
        self._state = ConnectionState(self.role)
        self._peer: _Party | None = None
        #: Set once ESTABLISHED (never before: until then the peer is unproven).
        self.peer_id: str | None = None
        self.peer_incarnation: int | None = None
        #: The largest frame we accept, said in Hello/Challenge (0: not said),
        #: and the peer's, once heard.
        self.max_frame = max_frame
        self.peer_max_frame = 0
        #: The peer's Goodbye, once received.
        self.peer_goodbye: Goodbye | None = None

    def __repr__(self) -> str:
        # Never show the cookie.
        peer = f" peer={self.peer_id!r}" if self.peer_id else ""
        return f"<{type(self).__name__} {self.node_id!r} {self.state.value}{peer}>"

    @property
    def state(self) -> ConnState:
        return self._state.state

    @property
    def established(self) -> bool:
        return self._state.state is ConnState.ESTABLISHED

    def start(self) -> list[Envelope]:
        """The envelopes that open the conversation (only the initiator has any)."""
        return []

    def receive(self, env: Envelope) -> list[Envelope]:
        """Process an incoming envelope; return the envelopes to send back."""
        event = event_of(env)
        if event is Event.DATA:
            # The hot path once established: one table lookup, nothing to say.
            self._state.process(_RECV, event, type(env).__name__)
            return []
        if event is Event.GOODBYE:
            assert isinstance(env, Goodbye)
            return self._receive_goodbye(env)
        return self._receive_handshake(env)

    def send(self, env: Envelope) -> None:
        """Check that ``env`` (data or a Goodbye) may be sent now."""
        event = event_of(env)
        if event is not Event.DATA and event is not Event.GOODBYE:
            self._state.fail()
            raise LocalProtocolError(f"{type(env).__name__} is sent by the handshake itself")
        self._state.process(_SEND, event, type(env).__name__)

    def close(self, reason: str, code: str = "") -> Goodbye:
        """The ``Goodbye`` to send before hanging up; allowed in every state."""
        env = Goodbye(reason=reason, code=code)
        self._state.process(_SEND, Event.GOODBYE)
        return env

    def _receive_goodbye(self, env: Goodbye) -> list[Envelope]:
        in_handshake = self._state.state not in (ConnState.ESTABLISHED, ConnState.CLOSING)
        self._state.process(_RECV, Event.GOODBYE)
        self.peer_goodbye = env
        if in_handshake:
            detail = f" [{env.code}]" if env.code else ""
            raise HandshakeFailed(
                f"peer closed the connection during the handshake: {env.reason}{detail}"
            )
        return []

    def _receive_handshake(self, env: Envelope) -> list[Envelope]:
        raise NotImplementedError

    def _fail(self, message: str) -> NoReturn:
        self._state.fail()
        raise HandshakeFailed(message)

    def _check_peer(self, version: int, node: str, nonce: bytes) -> None:
        if version != self.version:
            self._fail(
                f"protocol version mismatch: {self.node_id!r} speaks {self.version}, "
                f"peer {node!r} speaks {version}"
            )
        if not node:
            self._fail("peer sent an empty node id")
        if node == self.node_id:
            self._fail(f"peer claims our own node id {node!r} (connected to ourselves?)")
        if not MIN_NONCE_SIZE <= len(nonce) <= MAX_NONCE_SIZE:
            self._fail(f"peer {node!r} sent a {len(nonce)}-byte nonce")
        if hmac.compare_digest(nonce, self.nonce):
            self._fail(f"peer {node!r} echoed our nonce")

    def _me(self) -> _Party:
        return _Party(self.node_id, self.incarnation, self.nonce)

    def _proof(self, prover: Role) -> bytes:
        assert self._peer is not None
        if self.role is Role.INITIATOR:
            initiator, acceptor = self._me(), self._peer
        else:
            initiator, acceptor = self._peer, self._me()
        return compute_proof(self._cookie, prover, self.version, initiator, acceptor, self._binding)

    def _verify(self, welcome: Welcome) -> None:
        assert self._peer is not None
        prover = Role.ACCEPTOR if self.role is Role.INITIATOR else Role.INITIATOR
        if not hmac.compare_digest(welcome.proof, self._proof(prover)):
            bound = (
                "; or, the handshake being bound to the TLS channel, the two ends are not on"
                " the same channel (a man in the middle?) or only one uses TLSConfig.dev()"
                if self._binding
                else ""
            )
            self._fail(
                f"peer {self._peer.node!r} failed the cookie challenge "
                f"(the nodes do not share the same cookie, or the proof was replayed{bound})"
            )

    def _establish(self) -> None:
        assert self._peer is not None
        self.peer_id = self._peer.node
        self.peer_incarnation = self._peer.incarnation


class InitiatorConnection(Connection):
    """The side that dialled. ``expected_peer_id``, when given, must match."""

    role = Role.INITIATOR

    __slots__ = ("expected_peer_id",)

    def __init__(
        self,
        *,
        node_id: str,
        incarnation: int,
        cookie: bytes,
        nonce: bytes,
        version: int = PROTOCOL_VERSION,
        expected_peer_id: str | None = None,
        max_frame: int = 0,
        binding: bytes = b"",
    ) -> None:
        super().__init__(
            node_id=node_id,
            incarnation=incarnation,
            cookie=cookie,
            nonce=nonce,
            version=version,
            max_frame=max_frame,
            binding=binding,
        )
        self.expected_peer_id = expected_peer_id

    def start(self) -> list[Envelope]:
        self._state.process(_SEND, Event.HELLO)
        return [Hello(self.version, self.node_id, self.incarnation, self.nonce, self.max_frame)]

    def _receive_handshake(self, env: Envelope) -> list[Envelope]:
        self._state.process(_RECV, event_of(env), type(env).__name__)
        if isinstance(env, Challenge):
            self._check_peer(env.version, env.node, env.nonce)
            if self.expected_peer_id is not None and env.node != self.expected_peer_id:
                self._fail(f"expected node {self.expected_peer_id!r}, reached {env.node!r}")
            self._peer = _Party(env.node, env.incarnation, env.nonce)
            self.peer_max_frame = env.max_frame
            self._state.process(_SEND, Event.WELCOME)
            return [Welcome(self._proof(Role.INITIATOR))]
        # The table admits only a Welcome in SENT_PROOF, which moved us to
        # ESTABLISHED; the proof is checked before anyone can observe that.
        assert isinstance(env, Welcome)
        self._verify(env)
        self._establish()
        return []


class AcceptorConnection(Connection):
    """The side that was dialled."""

    role = Role.ACCEPTOR

    __slots__ = ()

    def _receive_handshake(self, env: Envelope) -> list[Envelope]:
        self._state.process(_RECV, event_of(env), type(env).__name__)
        if isinstance(env, Hello):
            self._check_peer(env.version, env.node, env.nonce)
            self._peer = _Party(env.node, env.incarnation, env.nonce)
            self.peer_max_frame = env.max_frame
            self._state.process(_SEND, Event.CHALLENGE)
            return [
                Challenge(self.version, self.node_id, self.incarnation, self.nonce, self.max_frame)
            ]
        assert isinstance(env, Welcome)
        self._verify(env)
        self._state.process(_SEND, Event.WELCOME)
        self._establish()
        return [Welcome(self._proof(Role.ACCEPTOR))]
