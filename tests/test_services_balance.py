"""Load-balancing policies: pure, no trio, no nodes."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trouper import ActorRef, ConfigurationError
from trouper.services import ConsistentHash, make_balancer
from trouper.services._balance import HashRing, key_bytes, stable_hash


def refs(n: int, node: str = "n1", start: int = 0) -> list[ActorRef]:
    return [ActorRef(node, f"/user/svc-{i}", 1000 + i) for i in range(start, start + n)]


def test_round_robin_visits_each_member_in_turn() -> None:
    members = refs(3)
    rr = make_balancer("round-robin")
    picks = [rr.pick(members, key=None, avoid=(), local_node="n1") for _ in range(6)]
    assert picks == members + members


def test_round_robin_skips_avoided_and_falls_back_when_all_are() -> None:
    members = refs(3)
    rr = make_balancer("round-robin")
    for _ in range(5):
        assert rr.pick(members, key=None, avoid={members[1]}, local_node="n1") != members[1]
    assert rr.pick(members, key=None, avoid=set(members), local_node="n1") in members
    assert rr.pick([], key=None, avoid=(), local_node="n1") is None


def test_least_outstanding_prefers_the_idle_member() -> None:
    a, b, c = refs(3)
    lo = make_balancer("least-outstanding")
    lo.started(a)
    lo.started(a)
    lo.started(b)
    assert lo.pick([a, b, c], key=None, avoid=(), local_node="n1") == c
    lo.started(c)
    lo.started(c)
    assert lo.pick([a, b, c], key=None, avoid=(), local_node="n1") == b
    lo.finished(a)
    lo.finished(a)
    assert lo.pick([a, b, c], key=None, avoid=(), local_node="n1") == a
    assert lo.pick([a, b, c], key=None, avoid={a}, local_node="n1") == b


def test_least_outstanding_forgets_members_with_nothing_in_flight() -> None:
    members = refs(50)
    lo = make_balancer("least-outstanding")
    for ref in members:
        lo.started(ref)
    for ref in members:
        lo.finished(ref)
    lo.finished(members[0])  # one too many: ignored, never negative
    assert lo.outstanding == {}  # type: ignore[attr-defined]


def test_least_outstanding_spreads_an_idle_group_evenly() -> None:
    members = refs(4)
    lo = make_balancer("least-outstanding")
    counts = Counter(lo.pick(members, key=None, avoid=(), local_node="n1") for _ in range(400))
    assert set(counts.values()) == {100}


def test_local_first_uses_local_members_then_the_rest() -> None:
    local = refs(2, "b")
    remote = refs(2, "a") + refs(1, "c")
    members = remote + local
    lf = make_balancer("local-first")
    picks = [lf.pick(members, key=None, avoid=(), local_node="b") for _ in range(4)]
    assert picks == local + local
    picks = [lf.pick(members, key=None, avoid=set(local), local_node="b") for _ in range(3)]
    assert sorted(picks) == sorted(remote)
    assert lf.pick(members, key=None, avoid=set(members), local_node="b") in members


def test_unknown_spec_names_the_closest() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'round-robin'"):
        make_balancer("round_robin")
    with pytest.raises(ConfigurationError, match="least-outstanding"):
        make_balancer("least-outsanding")
    with pytest.raises(ConfigurationError, match="ConsistentHash"):
        make_balancer(42)  # type: ignore[arg-type]


def test_consistent_hash_key_of() -> None:
    assert ConsistentHash(key="account").key_of({"account": "ada", "amount": 3}) == "ada"
    assert ConsistentHash(key=lambda a: (a["x"], a["y"])).key_of({"x": 1, "y": 2}) == (1, 2)
    with pytest.raises(ConfigurationError, match="did you mean 'account'"):
        ConsistentHash(key="acount").key_of({"account": "ada"})
    with pytest.raises(ConfigurationError, match="parameter name"):
        ConsistentHash(key="not a name")
    with pytest.raises(ConfigurationError, match="parameter name"):
        ConsistentHash(key=3)  # type: ignore[arg-type]


def test_key_hash_is_stable_across_processes() -> None:
    # Pinned values: blake2b of the encoded key, never Python's salted hash().
    assert key_bytes("ada") == b"sada"
    assert key_bytes(7) == b"j7"
    assert stable_hash(b"sada") == int.from_bytes(
        __import__("hashlib").blake2b(b"sada", digest_size=8).digest(), "big"
    )


def test_a_key_without_a_stable_encoding_is_refused() -> None:
    ring = make_balancer(ConsistentHash(key="k"))
    with pytest.raises(ConfigurationError, match=r"ConsistentHash key must be .* not object"):
        ring.pick(refs(2), key=object(), avoid=(), local_node="n1")
    assert key_bytes((1, "a")) == b'j[1,"a"]'


def test_consistent_hash_sends_a_key_to_the_same_member() -> None:
    members = refs(5)
    ring = make_balancer(ConsistentHash(key="k"))
    first = [ring.pick(members, key=f"key-{i}", avoid=(), local_node="n1") for i in range(100)]
    again = [ring.pick(members, key=f"key-{i}", avoid=(), local_node="n1") for i in range(100)]
    assert first == again
    # The member list's order does not matter, only its contents.
    other = make_balancer(ConsistentHash(key="k"))
    shuffled = list(reversed(members))
    assert [
        other.pick(shuffled, key=f"key-{i}", avoid=(), local_node="n1") for i in range(100)
    ] == (first)


def test_consistent_hash_avoid_moves_the_key_to_its_next_owner() -> None:
    members = refs(5)
    ring = HashRing()
    for i in range(200):
        owner = ring.owner(members, f"k{i}")
        assert owner is not None
        rest = [m for m in members if m != owner]
        alt = ring.pick(members, key=f"k{i}", avoid={owner})
        # The same member the key would go to if its owner left the group.
        assert alt == HashRing().owner(rest, f"k{i}")
    assert ring.pick(members, key="x", avoid=set(members)) in members


def _owners(members: list[ActorRef], keys: list[str]) -> dict[str, ActorRef]:
    ring = HashRing()
    out = {}
    for key in keys:
        owner = ring.owner(members, key)
        assert owner is not None
        out[key] = owner
    return out


@pytest.mark.parametrize("n", [3, 5, 10, 20])
def test_adding_or_removing_one_member_moves_about_1_over_n_of_the_keys(n: int) -> None:
    keys = [f"user-{i}" for i in range(10_000)]
    members = refs(n)
    before = _owners(members, keys)
    # Every member gets a fair share (no member starves or hogs the ring).
    shares = Counter(before.values())
    assert min(shares.values()) > 0.5 * 10_000 / n
    assert max(shares.values()) < 1.5 * 10_000 / n

    joined = refs(1, start=n)[0]
    after_join = _owners([*members, joined], keys)
    moved = [k for k in keys if after_join[k] != before[k]]
    assert all(after_join[k] == joined for k in moved)  # only to the new member
    assert len(moved) <= 1.5 * len(keys) / (n + 1)
    assert len(moved) >= 0.5 * len(keys) / (n + 1)

    gone = members[n // 2]
    after_leave = _owners([m for m in members if m != gone], keys)
    moved = [k for k in keys if after_leave[k] != before[k]]
    assert all(before[k] == gone for k in moved)  # keys of untouched members stay
    assert len(moved) == shares[gone]
    assert len(moved) <= 1.5 * len(keys) / n


@settings(max_examples=50, deadline=None)
@given(
    st.integers(min_value=1, max_value=8),
    st.lists(st.integers(0, 7), max_size=4),
    st.sampled_from(["round-robin", "least-outstanding", "local-first", "hash"]),
    st.integers(0, 2**32),
)
def test_every_policy_picks_a_member_and_avoids_when_it_can(
    n: int, avoided: list[int], spec: str, seed: int
) -> None:
    rnd = random.Random(seed)
    members = refs(n, "a") + refs(n, "b", start=n)
    avoid = {members[i] for i in avoided if i < len(members)}
    balancer = make_balancer(ConsistentHash(key="k") if spec == "hash" else spec)
    for _ in range(20):
        key = rnd.random() if spec == "hash" else None
        ref = balancer.pick(members, key=key, avoid=avoid, local_node="b")
        assert ref in members
        if len(avoid) < len(members):
            assert ref not in avoid
        balancer.started(ref)
