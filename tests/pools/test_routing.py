"""Worker pools' routing decisions and load bookkeeping: pure, no Trio run."""

from __future__ import annotations

import random
from collections import Counter

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trouper import ActorRef, ConfigurationError, ConsistentHash
from trouper.pools._load import PoolLoad
from trouper.pools._notes import Done, Gather
from trouper.pools._routing import (
    Broadcast,
    HashRouting,
    LeastLoaded,
    RandomRouting,
    RoundRobin,
    make_routing,
)


def refs(n: int, start: int = 0) -> list[ActorRef]:
    return [ActorRef("node-a", f"/user/pool/$w{i}", 1000 + i) for i in range(start, start + n)]


def no_load(ref: ActorRef) -> int:
    return 0


class Order(msgspec.Struct):
    account: str
    amount: int = 0


def test_round_robin_cycles_and_survives_membership_changes() -> None:
    rr = RoundRobin()
    workers = refs(3)
    assert [rr.pick(workers, None, no_load) for _ in range(6)] == workers * 2
    fewer = workers[:2]
    picks = [rr.pick(fewer, None, no_load) for _ in range(4)]
    assert Counter(picks) == {fewer[0]: 2, fewer[1]: 2}


def test_random_draws_from_the_given_rng() -> None:
    workers = refs(5)
    a = RandomRouting(random.Random(3))
    b = RandomRouting(random.Random(3))
    seq_a = [a.pick(workers, None, no_load) for _ in range(50)]
    assert seq_a == [b.pick(workers, None, no_load) for _ in range(50)]
    assert set(seq_a) == set(workers)
    assert seq_a != [a.pick(workers, None, no_load) for _ in range(50)]  # it moves on


def test_least_loaded_picks_the_smallest_load_and_spreads_ties() -> None:
    workers = refs(4)
    loads = {workers[0]: 3, workers[1]: 1, workers[2]: 2, workers[3]: 1}
    ll = LeastLoaded()
    picks = [ll.pick(workers, None, loads.__getitem__) for _ in range(4)]
    assert set(picks) == {workers[1], workers[3]}  # the two with load 1, in turn
    idle = LeastLoaded()
    assert [idle.pick(workers, None, no_load) for _ in range(4)] == workers


def test_hash_routing_reads_a_field_or_calls_a_function() -> None:
    workers = refs(8)
    by_field = HashRouting(ConsistentHash(key="account"))
    by_fn = HashRouting(ConsistentHash(key=lambda m: m.account))  # type: ignore[attr-defined]
    for account in ("ada", "bob", "cy", "dee"):
        a = by_field.pick(workers, Order(account, 1), no_load)
        assert all(by_field.pick(workers, Order(account, n), no_load) == a for n in range(5))
        assert by_fn.pick(workers, Order(account), no_load) == a
    with pytest.raises(ConfigurationError, match=r"no field 'acount' \(did you mean 'account'"):
        HashRouting(ConsistentHash(key="acount")).pick(workers, Order("ada"), no_load)


def test_broadcast_is_flagged_and_make_routing_names_mistakes() -> None:
    assert Broadcast().broadcast and not Broadcast().balancing
    rng = random.Random(0)
    assert isinstance(make_routing("least-loaded", rng), LeastLoaded)
    assert make_routing("random", rng).balancing
    assert not make_routing(ConsistentHash(key="k"), rng).balancing
    with pytest.raises(ConfigurationError, match="did you mean 'least-loaded'"):
        make_routing("least_loaded", rng)
    with pytest.raises(ConfigurationError, match="routing must be one of"):
        make_routing(None, rng)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.integers(0, 10_000), st.booleans())
def test_a_worker_joining_or_leaving_moves_about_one_nth_of_the_keys(
    n: int, seed: int, joining: bool
) -> None:
    rng = random.Random(seed)
    workers = refs(n, start=rng.randrange(1000))
    keys = [f"key-{rng.random()}" for _ in range(2000)]
    routing = HashRouting(ConsistentHash(key=lambda m: m))
    before = {k: routing.pick(workers, k, no_load) for k in keys}
    if joining:
        changed = [*workers, *refs(1, start=5000 + seed)]
        share = 1 / (n + 1)
    else:
        changed = [w for i, w in enumerate(workers) if i != rng.randrange(n)]
        share = 1 / n
    after = {k: routing.pick(changed, k, no_load) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    # Only keys of the joining/leaving worker move, and about 1/n of them.
    for k in moved:
        assert (after[k] not in workers) if joining else (before[k] not in changed)
    assert len(moved) <= 2.0 * share * len(keys) + 40


def test_load_counts_busy_workers_waiters_and_exact_waits() -> None:
    load: PoolLoad[str] = PoolLoad()
    load.add("w1")
    load.add("w2")
    t1 = load.handed("w1", 0.0)
    t2 = load.handed("w1", 0.1)
    t3 = load.handed("w1", 0.2)
    assert (load.busy(), load.waiting(), load.outstanding("w1")) == (1, 2, 3)
    assert load.oldest_wait(0.5) == pytest.approx(0.4)  # t2 waited since 0.1
    # t1 finishes at 1.0: t2 starts then, after waiting 0.9 s.
    assert load.finished("w1", t1, 1.0) == pytest.approx(0.9)
    assert load.finished("w1", t3, 1.1) is None  # out of order (rejected): no wait
    assert load.finished("w1", t2, 1.2) is None  # nothing was behind it
    assert load.finished("w1", t2, 1.3) is None  # a second answer counts once
    assert (load.busy(), load.waiting(), load.finished_total) == (0, 0, 3)
    assert load.idle(["w1", "w2"]) == ["w2", "w1"]  # last started first
    load.remove("w1")
    assert load.finished("w1", 99, 2.0) is None and "w1" not in load


class Slot:
    def __init__(self) -> None:
        self.value: object = None
        self.error: BaseException | None = None
        self.calls = 0
        self.trace = "ctx"

    def set(self, value: object) -> None:
        self.value, self.calls = value, self.calls + 1

    def fail(self, exc: BaseException) -> None:
        self.error, self.calls = exc, self.calls + 1


class Pool:
    def __init__(self) -> None:
        self.done: list[tuple[object, int]] = []

    def finished(self, worker: object, token: int) -> None:
        self.done.append((worker, token))


def test_a_done_note_answers_the_asker_and_tells_the_router() -> None:
    pool, slot = Pool(), Slot()
    note = Done(pool, "w1", 7, slot)
    assert note.trace == "ctx"
    note.set(42)
    assert (slot.value, pool.done) == (42, [("w1", 7)])
    told = Done(pool, "w2", 8, None)  # a tell: no asker
    told.fail(ValueError("x"))
    assert pool.done[-1] == ("w2", 8)


def test_a_gather_answers_once_with_every_result_or_the_first_failure() -> None:
    slot = Slot()
    gather = Gather(slot, 3)
    parts = [gather.part(i) for i in range(3)]
    parts[2].set("c")
    parts[0].set("a")
    assert slot.calls == 0
    parts[1].set("b")
    assert (slot.value, slot.calls) == (["a", "b", "c"], 1)
    failing = Slot()
    gather = Gather(failing, 2)
    first, second = gather.part(0), gather.part(1)
    first.fail(KeyError("k"))
    second.set("late")
    second.fail(ValueError("later"))
    assert isinstance(failing.error, KeyError) and failing.calls == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["hand", "finish-first", "finish-any"]), st.integers(0, 2)),
        max_size=80,
    )
)
def test_load_matches_a_model_of_fifo_workers(ops: list[tuple[str, int]]) -> None:
    """Against a plain model (a FIFO list of hand-over times per worker):
    busy and waiting counts, and the wait reported when the first finishes."""
    load: PoolLoad[int] = PoolLoad()
    model: dict[int, list[tuple[int, float]]] = {w: [] for w in range(3)}
    for w in model:
        load.add(w)
    now = 0.0
    for op, w in ops:
        now += 0.25
        if op == "hand":
            model[w].append((load.handed(w, now), now))
        elif model[w]:
            i = 0 if op == "finish-first" else len(model[w]) - 1
            token, _ = model[w].pop(i)
            waited = load.finished(w, token, now)
            if i == 0 and model[w]:
                assert waited == pytest.approx(now - model[w][0][1])
            else:
                assert waited is None
        assert load.busy() == sum(1 for q in model.values() if q)
        assert load.waiting() == sum(max(0, len(q) - 1) for q in model.values())
        assert all(load.outstanding(w) == len(q) for w, q in model.items())
        expected = max((now - q[1][1] for q in model.values() if len(q) > 1), default=0.0)
        assert load.oldest_wait(now) == pytest.approx(expected)
