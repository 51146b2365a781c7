"""The handshake and the connection state table."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trouper._errors import ConfigurationError, HandshakeFailed, ProtocolError
from trouper.protocols import (
    PROTOCOL_VERSION,
    TRANSITIONS,
    AcceptorConnection,
    Challenge,
    Connection,
    ConnState,
    Direction,
    Envelope,
    Event,
    FrameDecoder,
    FrameEncoder,
    Goodbye,
    Heartbeat,
    Hello,
    InitiatorConnection,
    Role,
    Tell,
    Welcome,
    WireRef,
)
from trouper.protocols._handshake import _Party, compute_proof
from trouper.protocols._state import INITIAL_STATE, ConnectionState

COOKIE = b"the-shared-cluster-cookie-0123456789"
NONCE_I = bytes(range(16))
NONCE_A = bytes(range(100, 132))
TELL = Tell(WireRef("a", "/user/x", 1), "builtins:int", msgspec.Raw(b"\x01"))


def initiator(cookie: bytes = COOKIE, nonce: bytes = NONCE_I, **kw: object) -> InitiatorConnection:
    return InitiatorConnection(
        node_id="node-i",
        incarnation=11,
        cookie=cookie,
        nonce=nonce,
        **kw,  # type: ignore[arg-type]
    )


def acceptor(cookie: bytes = COOKIE, nonce: bytes = NONCE_A, **kw: object) -> AcceptorConnection:
    return AcceptorConnection(
        node_id="node-a",
        incarnation=22,
        cookie=cookie,
        nonce=nonce,
        **kw,  # type: ignore[arg-type]
    )


def state(conn: Connection) -> ConnState:
    """Read the state through a call, so mypy does not narrow it between steps."""
    return conn.state


def pump(i: Connection, a: Connection, frames: list[bytes] | None = None) -> None:
    """Run the handshake over real frames until nobody has anything to say."""
    encoder = FrameEncoder()
    decoders = {id(i): FrameDecoder(), id(a): FrameDecoder()}
    queue: list[tuple[Connection, list[Envelope]]] = [(a, i.start()), (i, a.start())]
    while queue:
        target, envs = queue.pop(0)
        if not envs:
            continue
        frame = encoder.encode(envs)
        if frames is not None:
            frames.append(frame)
        other = a if target is i else i
        for env in decoders[id(target)].feed(frame):
            queue.append((other, target.receive(env)))


def test_success_both_ways() -> None:
    i, a = initiator(), acceptor()
    frames: list[bytes] = []
    pump(i, a, frames)
    assert i.established and a.established
    assert (i.peer_id, i.peer_incarnation) == ("node-a", 22)
    assert (a.peer_id, a.peer_incarnation) == ("node-i", 11)
    assert len(frames) == 4
    # Data flows both ways afterwards.
    i.send(TELL)
    assert a.receive(TELL) == []
    a.send(TELL)
    assert i.receive(TELL) == []


def test_message_sequence() -> None:
    i, a = initiator(), acceptor()
    (hello,) = i.start()
    assert hello == Hello(PROTOCOL_VERSION, "node-i", 11, NONCE_I)
    assert state(i) is ConnState.SENT_HELLO
    assert a.start() == []
    (challenge,) = a.receive(hello)
    assert challenge == Challenge(PROTOCOL_VERSION, "node-a", 22, NONCE_A)
    assert state(a) is ConnState.SENT_CHALLENGE
    (proof_i,) = i.receive(challenge)
    assert isinstance(proof_i, Welcome) and len(proof_i.proof) == 32
    assert state(i) is ConnState.SENT_PROOF
    assert i.peer_id is None  # not proven yet
    (proof_a,) = a.receive(proof_i)
    assert isinstance(proof_a, Welcome) and proof_a.proof != proof_i.proof
    assert state(a) is ConnState.ESTABLISHED
    assert i.receive(proof_a) == []
    assert state(i) is ConnState.ESTABLISHED


def test_cookie_never_crosses_the_wire() -> None:
    i, a = initiator(), acceptor()
    frames: list[bytes] = []
    pump(i, a, frames)
    for frame in frames:
        assert COOKIE not in frame
        assert COOKIE[:12] not in frame
    assert COOKIE.decode() not in repr(i) + repr(a)


def test_wrong_cookie_detected_by_acceptor() -> None:
    i, a = initiator(cookie=b"wrong cookie"), acceptor()
    (hello,) = i.start()
    (challenge,) = a.receive(hello)
    (proof_i,) = i.receive(challenge)
    with pytest.raises(HandshakeFailed, match="cookie"):
        a.receive(proof_i)
    assert state(a) is ConnState.ERROR and a.peer_id is None
    # The acceptor can still say why, and the initiator learns it.
    bye = a.close("handshake failed", code=HandshakeFailed.error_code)
    with pytest.raises(HandshakeFailed, match="handshake-failed"):
        i.receive(bye)
    assert state(i) is ConnState.CLOSED and i.peer_goodbye == bye


def test_wrong_cookie_detected_by_initiator() -> None:
    # A rogue acceptor without the cookie: whatever it answers fails.
    i = initiator()
    i.start()
    i.receive(Challenge(PROTOCOL_VERSION, "node-a", 22, NONCE_A))
    forged = compute_proof(
        b"guessed cookie",
        Role.ACCEPTOR,
        PROTOCOL_VERSION,
        _Party("node-i", 11, NONCE_I),
        _Party("node-a", 22, NONCE_A),
    )
    with pytest.raises(HandshakeFailed, match="cookie"):
        i.receive(Welcome(forged))
    assert state(i) is ConnState.ERROR and not i.established and i.peer_id is None
    assert isinstance(i.close("bye"), Goodbye)


def test_reflected_proof_fails() -> None:
    i = initiator()
    i.start()
    (proof_i,) = i.receive(Challenge(PROTOCOL_VERSION, "node-a", 22, NONCE_A))
    with pytest.raises(HandshakeFailed):
        i.receive(proof_i)


def test_replayed_initiator_proof_with_another_nonce_fails() -> None:
    i, a = initiator(), acceptor()
    (hello,) = i.start()
    (challenge,) = a.receive(hello)
    (recorded_proof,) = i.receive(challenge)
    # An eavesdropper replays Hello and the proof to a new acceptor session.
    a2 = acceptor(nonce=bytes(32))
    a2.receive(hello)
    with pytest.raises(HandshakeFailed):
        a2.receive(recorded_proof)


def test_replayed_acceptor_proof_with_another_nonce_fails() -> None:
    i, a = initiator(), acceptor()
    pump(i, a)
    recorded = compute_proof(
        COOKIE,
        Role.ACCEPTOR,
        PROTOCOL_VERSION,
        _Party("node-i", 11, NONCE_I),
        _Party("node-a", 22, NONCE_A),
    )
    i2 = initiator(nonce=b"\xff" * 16)
    i2.start()
    i2.receive(Challenge(PROTOCOL_VERSION, "node-a", 22, NONCE_A))
    with pytest.raises(HandshakeFailed):
        i2.receive(Welcome(recorded))


def test_proof_binds_identities() -> None:
    # Same nonces, but the acceptor claims another incarnation: proofs differ.
    i = initiator()
    i.start()
    (proof,) = i.receive(Challenge(PROTOCOL_VERSION, "node-a", 23, NONCE_A))
    a = acceptor()
    a.receive(Hello(PROTOCOL_VERSION, "node-i", 11, NONCE_I))
    with pytest.raises(HandshakeFailed):
        a.receive(proof)


def test_version_mismatch_detected_by_acceptor() -> None:
    i, a = initiator(version=PROTOCOL_VERSION + 1), acceptor()
    (hello,) = i.start()
    with pytest.raises(HandshakeFailed, match="version mismatch"):
        a.receive(hello)
    assert state(a) is ConnState.ERROR


def test_version_mismatch_detected_by_initiator() -> None:
    i = initiator()
    i.start()
    with pytest.raises(HandshakeFailed, match="version mismatch"):
        i.receive(Challenge(PROTOCOL_VERSION + 1, "node-a", 22, NONCE_A))


def test_identity_checks() -> None:
    i = initiator(expected_peer_id="node-z")
    i.start()
    with pytest.raises(HandshakeFailed, match="expected node 'node-z'"):
        i.receive(Challenge(PROTOCOL_VERSION, "node-a", 22, NONCE_A))
    a = acceptor()
    with pytest.raises(HandshakeFailed, match="own node id"):
        a.receive(Hello(PROTOCOL_VERSION, "node-a", 1, NONCE_I))
    a = acceptor()
    with pytest.raises(HandshakeFailed, match="echoed our nonce"):
        a.receive(Hello(PROTOCOL_VERSION, "node-i", 1, NONCE_A))
    a = acceptor()
    with pytest.raises(HandshakeFailed, match="nonce"):
        a.receive(Hello(PROTOCOL_VERSION, "node-i", 1, b"short"))


@pytest.mark.parametrize(
    "kwargs",
    [{"cookie": b""}, {"nonce": b"short"}, {"nonce": bytes(65)}, {"node_id": ""}],
)
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    params: dict[str, object] = {
        "node_id": "n",
        "incarnation": 1,
        "cookie": COOKIE,
        "nonce": NONCE_I,
        **kwargs,
    }
    with pytest.raises(ConfigurationError):
        InitiatorConnection(**params)  # type: ignore[arg-type]


def test_out_of_order_envelopes() -> None:
    i, a = initiator(), acceptor()
    hello = Hello(PROTOCOL_VERSION, "node-i", 11, NONCE_I)
    challenge = Challenge(PROTOCOL_VERSION, "node-a", 22, NONCE_A)
    cases: list[tuple[Connection, bool, list[Envelope]]] = [
        (acceptor(), True, [Welcome(bytes(32))]),
        (acceptor(), True, [challenge]),
        (acceptor(), True, [TELL]),
        (acceptor(), True, [hello, hello]),
        (initiator(), False, [challenge]),  # before start()
        (initiator(), True, [hello]),
        (initiator(), True, [Welcome(bytes(32))]),
    ]
    for conn, started, envs in cases:
        if started:
            conn.start()
        for env in envs[:-1]:
            conn.receive(env)
        with pytest.raises(ProtocolError):
            conn.receive(envs[-1])
        assert state(conn) is ConnState.ERROR
        with pytest.raises(ProtocolError):
            conn.receive(Heartbeat(1, 0.0))  # stays broken

    i = initiator()
    i.start()
    with pytest.raises(ProtocolError):
        i.receive(Heartbeat(1, 0.0))  # data before ESTABLISHED

    i, a = initiator(), acceptor()
    pump(i, a)
    for conn, env in ((a, hello), (i, challenge), (i, Welcome(bytes(32))), (a, Welcome(bytes(32)))):
        with pytest.raises(ProtocolError):
            conn.receive(env)
        assert state(conn) is ConnState.ERROR


def test_send_rules() -> None:
    i = initiator()
    with pytest.raises(ProtocolError):
        i.send(TELL)  # not established
    assert state(i) is ConnState.ERROR
    i = initiator()
    i.start()
    with pytest.raises(ProtocolError):
        i.start()
    i, a = initiator(), acceptor()
    pump(i, a)
    with pytest.raises(ProtocolError, match="sent by the handshake"):
        a.send(Hello(PROTOCOL_VERSION, "node-a", 1, NONCE_A))


def test_goodbye_and_closing() -> None:
    i, a = initiator(), acceptor()
    pump(i, a)
    bye = i.close("shutting down")
    assert state(i) is ConnState.CLOSING
    assert i.receive(TELL) == []  # the peer's in-flight data is still accepted
    assert a.receive(bye) == []
    assert state(a) is ConnState.CLOSED and a.peer_goodbye == bye
    reply = a.close("bye")  # answering a Goodbye is allowed
    assert i.receive(reply) == []
    assert state(i) is ConnState.CLOSED
    with pytest.raises(ProtocolError):
        i.receive(TELL)

    i, a = initiator(), acceptor()
    pump(i, a)
    i.close("shutting down")
    with pytest.raises(ProtocolError, match="cannot send Tell in state closing"):
        i.send(TELL)
    assert state(i) is ConnState.ERROR  # a local protocol error poisons too, as in h11


def test_goodbye_during_handshake() -> None:
    i = initiator()
    i.start()
    assert i.close("changed my mind").reason == "changed my mind"
    assert state(i) is ConnState.CLOSED
    a = acceptor()
    with pytest.raises(HandshakeFailed, match="during the handshake: busy"):
        a.receive(Goodbye("busy"))


# -- the table -----------------------------------------------------------------


def test_table_only_reaches_established_through_the_handshake() -> None:
    for role in Role:
        reachable = {INITIAL_STATE[role]}
        frontier = [INITIAL_STATE[role]]
        edges: list[tuple[ConnState, Direction, Event, ConnState]] = []
        while frontier:
            state = frontier.pop()
            for (r, s, d, e), new in TRANSITIONS.items():
                if r is role and s is state:
                    edges.append((s, d, e, new))
                    if new not in reachable:
                        reachable.add(new)
                        frontier.append(new)
        assert ConnState.ESTABLISHED in reachable
        into_established = {(s, d, e) for s, d, e, n in edges if n is ConnState.ESTABLISHED}
        last = (Direction.RECEIVE if role is Role.INITIATOR else Direction.SEND, Event.WELCOME)
        assert {(d, e) for s, d, e in into_established if s is not ConnState.ESTABLISHED} == {last}
        # Nothing leaves ERROR or CLOSED except a (harmless) Goodbye.
        for (r, s, d, e), new in TRANSITIONS.items():
            if r is role and s in (ConnState.ERROR, ConnState.CLOSED):
                assert (d, e, new) == (Direction.SEND, Event.GOODBYE, s)


class TableMachine(RuleBasedStateMachine):
    """Random events against ConnectionState, checked against the table."""

    def __init__(self) -> None:
        super().__init__()
        self.conn: ConnectionState | None = None

    @precondition(lambda self: self.conn is None)
    @rule(role=st.sampled_from(Role))
    def make(self, role: Role) -> None:
        self.conn = ConnectionState(role)

    @precondition(lambda self: self.conn is not None)
    @rule(direction=st.sampled_from(Direction), event=st.sampled_from(Event))
    def step(self, direction: Direction, event: Event) -> None:
        assert self.conn is not None
        before = self.conn.state
        expected = TRANSITIONS.get((self.conn.role, before, direction, event))
        if expected is None:
            with pytest.raises(ProtocolError):
                self.conn.process(direction, event)
            assert self.conn.state is ConnState.ERROR
        else:
            assert self.conn.process(direction, event) is expected
            assert self.conn.state is expected

    @invariant()
    def error_is_sticky(self) -> None:
        if self.conn is not None and self.conn.state is ConnState.ERROR:
            with pytest.raises(ProtocolError):
                self.conn.process(Direction.RECEIVE, Event.DATA)
            assert self.conn.state is ConnState.ERROR


TestTable = TableMachine.TestCase
TestTable.settings = settings(max_examples=100, stateful_step_count=20, deadline=None)


class HandshakeMachine(RuleBasedStateMachine):
    """Two real connections over a hostile network: messages can be dropped,
    duplicated, reordered or forged. Only ProtocolError/HandshakeFailed may
    come out, and a side that is ESTABLISHED has a truthful peer."""

    def __init__(self) -> None:
        super().__init__()
        self.i = initiator()
        self.a = acceptor()
        self.to_a: list[Envelope] = list(self.i.start())
        self.to_i: list[Envelope] = []
        self.broken: set[str] = set()

    def _deliver(self, side: str, env: Envelope) -> None:
        conn, outbox = (self.i, self.to_a) if side == "i" else (self.a, self.to_i)
        was_broken = conn.state in (ConnState.ERROR, ConnState.CLOSED)
        try:
            outbox.extend(conn.receive(env))
        except (ProtocolError, HandshakeFailed):
            self.broken.add(side)
            assert conn.state in (ConnState.ERROR, ConnState.CLOSED)
        else:
            assert not was_broken

    @precondition(lambda self: self.to_a)
    @rule(data=st.data())
    def deliver_to_acceptor(self, data: st.DataObject) -> None:
        idx = data.draw(st.integers(0, len(self.to_a) - 1))
        self._deliver("a", self.to_a.pop(idx))

    @precondition(lambda self: self.to_i)
    @rule(data=st.data())
    def deliver_to_initiator(self, data: st.DataObject) -> None:
        idx = data.draw(st.integers(0, len(self.to_i) - 1))
        self._deliver("i", self.to_i.pop(idx))

    @precondition(lambda self: self.to_a or self.to_i)
    @rule(duplicate=st.booleans())
    def drop_or_duplicate(self, duplicate: bool) -> None:
        queue = self.to_a if self.to_a else self.to_i
        if duplicate:
            queue.append(queue[0])
        else:
            queue.pop(0)

    @rule(
        side=st.sampled_from(["i", "a"]),
        env=st.sampled_from(
            [
                Hello(PROTOCOL_VERSION, "node-x", 1, bytes(16)),
                Challenge(PROTOCOL_VERSION, "node-x", 1, bytes(16)),
                Welcome(bytes(32)),
                TELL,
                Heartbeat(1, 0.0),
                Goodbye("forged"),
            ]
        ),
    )
    def inject(self, side: str, env: Envelope) -> None:
        self._deliver(side, env)

    @invariant()
    def established_means_authentic(self) -> None:
        event(f"initiator {self.i.state.value}, acceptor {self.a.state.value}")
        if self.i.established:
            assert (self.i.peer_id, self.i.peer_incarnation) == ("node-a", 22)
        if self.a.established:
            assert (self.a.peer_id, self.a.peer_incarnation) == ("node-i", 11)
        for side, conn in (("i", self.i), ("a", self.a)):
            if side in self.broken:
                assert not conn.established


TestHandshake = HandshakeMachine.TestCase
TestHandshake.settings = settings(max_examples=150, stateful_step_count=25, deadline=None)


@settings(max_examples=50, derandomize=True)
@given(
    st.binary(min_size=1, max_size=64),
    st.binary(min_size=1, max_size=64),
)
def test_a_bound_handshake_needs_the_same_channel_at_both_ends(mine: bytes, theirs: bytes) -> None:
    """Proofs bound to a channel (``binding``) verify only on the same channel:
    a relay between two TLS sessions of its own makes the bindings differ."""
    same_i, same_a = initiator(binding=mine), acceptor(binding=mine)
    pump(same_i, same_a)
    assert same_i.established and same_a.established
    if mine == theirs:
        return
    i, a = initiator(binding=mine), acceptor(binding=theirs)
    with pytest.raises(HandshakeFailed, match="same channel"):
        pump(i, a)
    assert not a.established and not i.established


def test_an_empty_binding_is_the_unbound_transcript() -> None:
    """Nodes that bind nothing (no TLS, or not in dev mode) compute exactly
    the proofs of before: the wire stays compatible."""
    me, peer = _Party("i", 1, NONCE_I), _Party("a", 2, NONCE_A)
    unbound = compute_proof(COOKIE, Role.INITIATOR, PROTOCOL_VERSION, me, peer)
    assert compute_proof(COOKIE, Role.INITIATOR, PROTOCOL_VERSION, me, peer, b"") == unbound
    assert compute_proof(COOKIE, Role.INITIATOR, PROTOCOL_VERSION, me, peer, b"x") != unbound
