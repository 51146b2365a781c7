"""The keys-only session store (``_kv_store``, the layout of sqlite, memory
and PostgreSQL) against a model, as a Hypothesis state machine: random
creates, heartbeats, claims, removals, sweeps and clock jumps over a memory
store with a test clock. Whatever happens, a live session is in every index
and loads; a removed or swept one is in none; a session's end is reported
(``remove``/``sweep`` returning it) exactly once; the connection and
per-user rules hold."""

import itertools

import attrs
import msgspec
import trio
from examples.collab.sessions import SessionRecord
from examples.collab.sessions._kv_store import KvSessionStore
from examples.collab.sessions._store import CreateRefused
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trouper.stores import MemoryStore

USERS = ["ada", "bo", "cy"]
CONNS = ["c1", "c2", "c3", "c4"]
NODES = ["n1", "n2"]
MAX_PER_USER = 2


@attrs.define
class Model:
    record: SessionRecord
    owner: str
    expires: float


class SessionStoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.store = KvSessionStore(MemoryStore(clock=self.clock), clock=self.clock)
        self.sessions: dict[str, Model] = {}  # not yet reported ended
        self.reported: set[str] = set()
        self.ids = (f"{n:022d}" for n in itertools.count())

    def clock(self) -> float:
        return self.now

    def live(self) -> dict[str, Model]:
        return {sid: m for sid, m in self.sessions.items() if m.expires > self.now}

    def report(self, sid: str) -> None:
        assert sid not in self.reported, f"{sid} reported twice"
        self.reported.add(sid)
        del self.sessions[sid]

    @rule(
        user=st.sampled_from(USERS),
        conn=st.sampled_from(CONNS),
        ttl=st.sampled_from([1.0, 5.0, 10.0]),
        owner=st.sampled_from(NODES),
    )
    def create(self, user: str, conn: str, ttl: float, owner: str) -> None:
        record = SessionRecord(next(self.ids), user, conn, self.now, self.now, ttl, {})
        live = self.live()
        holder = [m for m in live.values() if m.record.connection == conn]
        mine = [m for m in live.values() if m.record.user == user]
        try:
            got, created = trio.run(self.store.create, record, owner, MAX_PER_USER)
        except CreateRefused as exc:
            if holder:
                assert holder[0].record.user != user and "in use" in str(exc)
            else:
                assert len(mine) >= MAX_PER_USER and "live sessions" in str(exc)
            return
        if holder:
            assert not created and holder[0].record.user == user
            assert got == holder[0].record
            return
        assert created and got == record and len(mine) < MAX_PER_USER
        self.sessions[record.id] = Model(record, owner, self.now + ttl)

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), by=st.sampled_from(NODES))
    def heartbeat(self, data: st.DataObject, by: str) -> None:
        sid = data.draw(st.sampled_from(sorted(self.sessions)))
        model = self.sessions[sid]
        beat = msgspec.structs.replace(model.record, last_heartbeat=self.now)
        outcome = trio.run(self.store.write, beat, by)
        if model.expires <= self.now:
            assert outcome == "gone"
        elif model.owner != by:
            assert outcome == "taken"
        else:
            assert outcome == "ok"
            model.record, model.expires = beat, self.now + beat.ttl

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), to=st.sampled_from(NODES), expected=st.sampled_from(NODES))
    def claim(self, data: st.DataObject, to: str, expected: str) -> None:
        sid = data.draw(st.sampled_from(sorted(self.sessions)))
        model = self.sessions[sid]
        claimed = trio.run(self.store.claim, sid, expected, to)
        assert claimed == (model.expires > self.now and model.owner == expected)
        if claimed:  # the same arithmetic as the store's: the TTL runs on
            model.owner = to
            model.expires = self.now + (model.expires - self.now)

    @precondition(lambda self: self.sessions or self.reported)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(sorted(self.sessions.keys() | self.reported)))
        user = trio.run(self.store.remove, sid)
        if sid in self.sessions:
            assert user == self.sessions[sid].record.user
            self.report(sid)
        else:
            assert user is None

    @rule(seconds=st.sampled_from([0.4, 1.5, 6.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule(batch=st.sampled_from([1, 1000]))
    def sweep(self, batch: int) -> None:
        due = {sid for sid, m in self.sessions.items() if m.expires <= self.now}
        ended = trio.run(self.store.sweep, batch)
        for sid, user in ended:
            assert sid in due and user == self.sessions[sid].record.user
            self.report(sid)
        if batch == 1000:
            assert {sid for sid, _ in ended} == due

    @invariant()
    def indexes_agree(self) -> None:
        async def check() -> None:
            indexed: set[str] = set()
            for user in USERS:
                indexed |= set(await self.store.ids(user, None, False, 1000))
            for conn in CONNS:
                indexed |= set(await self.store.ids(None, conn, False, 1000))
            everyone = set(await self.store.ids(None, None, True, 1000))
            assert indexed <= everyone
            # Nothing reported ended is indexed anywhere any more.
            assert not (everyone & self.reported)
            # Every session not reported ended is still known to the sweep;
            # a live one is in every index and loads as it was written (an
            # expired one may have left its connection's index already: a
            # new session on that connection drops it).
            for sid, model in self.sessions.items():
                rec = model.record
                assert sid in everyone
                loaded = await self.store.load(sid)
                if model.expires > self.now:
                    assert sid in await self.store.ids(rec.user, rec.connection, False, 1000)
                    assert loaded == (rec, model.owner)
                else:
                    assert loaded is None

        trio.run(check)


TestSessionStore = SessionStoreMachine.TestCase
TestSessionStore.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


async def test_concurrent_removals_report_an_end_once() -> None:
    """Many removers at once (an actor's expiry, sweeps on several nodes):
    exactly one of them removes each session's companion entry."""
    now = [1000.0]
    store = KvSessionStore(MemoryStore(clock=lambda: now[0]), clock=lambda: now[0])
    records = [
        SessionRecord(f"{n:022d}", "ada", f"c{n}", 1000.0, 1000.0, 1.0, {}) for n in range(8)
    ]
    for record in records:
        assert (await store.create(record, "n1", 100))[1]
    now[0] += 2.0  # all expired
    reports: list[str] = []

    async def remover(record: SessionRecord) -> None:
        if await store.remove(record.id) is not None:
            reports.append(record.id)

    async def sweeper() -> None:
        reports.extend(sid for sid, _ in await store.sweep(1000))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for record in records:
                for _ in range(3):
                    nursery.start_soon(remover, record)
            for _ in range(3):
                nursery.start_soon(sweeper)
    assert sorted(reports) == [r.id for r in records]
    assert await store.ids(None, None, True, 1000) == []
    assert await store.ids("ada", None, False, 1000) == []
