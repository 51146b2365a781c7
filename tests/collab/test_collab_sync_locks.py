"""The lock table (pure), as a hypothesis state machine against a model:
fencing tokens strictly increase, live leases of different sessions never
conflict, and a fence is accepted exactly when it names the live lease."""

from __future__ import annotations

import pytest
from examples.collab.sync._locks import MAX_TTL, Lease, LockError, LockTable
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

SCOPES = st.sampled_from(["*", "intro", "body", "end"])
SESSIONS = st.sampled_from(["s1", "s2", "s3"])
TTLS = st.sampled_from([0.5, 1.0, 5.0])


def conflicts(a: str, b: str) -> bool:
    return a == "*" or b == "*" or a == b


class Locks(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = LockTable(max_locks=3)
        self.now = 1000.0
        self.model: dict[str, Lease] = {}  # scope -> the lease the model says is held
        self.tokens: list[int] = []

    def live(self) -> dict[str, Lease]:
        return {s: lease for s, lease in self.model.items() if lease.expires_at > self.now}

    @rule(seconds=st.sampled_from([0.1, 0.6, 2.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule(scope=SCOPES, session=SESSIONS, ttl=TTLS)
    def acquire(self, scope: str, session: str, ttl: float) -> None:
        live = self.live()
        blocked = any(
            held.session_id != session and conflicts(scope, s) for s, held in live.items()
        )
        full = scope not in live and len(live) >= 3
        try:
            lease = self.table.acquire(scope, session, ttl, self.now)
        except LockError:
            assert blocked or full
            return
        assert not blocked and not full
        assert not self.tokens or lease.token > self.tokens[-1]  # strictly increasing
        self.tokens.append(lease.token)
        self.model = live
        self.model[scope] = lease

    @rule(scope=SCOPES, session=SESSIONS, ttl=TTLS, stale=st.booleans())
    def renew(self, scope: str, session: str, ttl: float, stale: bool) -> None:
        held = self.live().get(scope)
        token = (held.token if held else 1) - (1 if stale else 0)
        try:
            lease = self.table.plan_renew(scope, session, token, ttl, self.now)
        except LockError:
            assert held is None or stale or held.session_id != session
            return
        assert held is not None and not stale and held.session_id == session
        assert lease.token == held.token
        self.table.install(lease)
        self.model[scope] = lease

    @rule(scope=SCOPES, session=SESSIONS)
    def release(self, scope: str, session: str) -> None:
        lease = self.table.plan_release(scope, session, None)
        held = self.model.get(scope)
        if lease is None:
            assert held is None or held.session_id != session or held.expires_at <= self.now
            return
        self.table.remove(lease.scope, lease.token)
        self.model.pop(scope, None)

    @rule(scope=SCOPES, back=st.integers(0, 2))
    def fence(self, scope: str, back: int) -> None:
        held = self.live().get(scope)
        token = (held.token if held else max(self.tokens, default=0)) - back
        try:
            self.table.check(scope, token, self.now)
        except LockError as exc:
            assert held is None or back > 0
            assert f"stale lock token {token} for scope {scope!r}" in str(exc)
            return
        assert held is not None and back == 0

    @invariant()
    def live_leases_never_conflict(self) -> None:
        live = [lease for lease in self.table.leases.values() if lease.expires_at > self.now]
        for a in live:
            for b in live:
                if a is not b and a.session_id != b.session_id:
                    assert not conflicts(a.scope, b.scope)


Locks.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_lock_table = Locks.TestCase


def test_bad_arguments_are_refused_naming_them() -> None:
    table = LockTable()
    with pytest.raises(LockError, match="ttl"):
        table.acquire("*", "s", 0, 0.0)
    with pytest.raises(LockError, match="ttl"):
        table.acquire("*", "s", MAX_TTL + 1, 0.0)
    with pytest.raises(LockError, match="scope"):
        table.acquire("", "s", 1, 0.0)
    with pytest.raises(LockError, match="session id"):
        table.acquire("a", "x" * 129, 1, 0.0)
    assert table.leases == {} and table.last_token == 0
