"""The language of ``test_hostile_peer``: the actors the node under attack
runs, and the steps a hostile peer may take (with hypothesis strategies).

A step is a frozen attrs class (so hypothesis prints a failing program
readably) that names things symbolically: a target is ``("victim", 2)``,
not a uid. ``hostile_world.World`` resolves those names against the live
nodes when the step runs, so any program hypothesis draws or shrinks to can
run. The vocabularies:

* targets: ``SAFE`` (live actors the test relies on) and ``OTHERS``
  (victims, actors the peer spawned, dead, stale or unknown refs, refs on
  other nodes, the node's guardians and system actors, odd paths);
* payloads: ``HARMLESS`` (messages that fit, unknown types, payloads that do
  not fit their type, bad refs, huge ints...) and ``DESTRUCTIVE`` (a
  ``PoisonPill``, only ever sent to ``OTHERS``);
* ids (asks, spawns, stops, streams): fresh, reused (the last one, maybe
  still pending), zero, or the largest a U64 holds.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import attrs
import msgspec
import trio
from hypothesis import strategies as st

import trouper

TARGET = "a-target"  # smaller than the fake members' ids: gossip makes it dial them
LEGIT = "legit"
HOSTILE = "hostile"
#: Seconds the node may take to answer a probe (or to hang up when asked).
PROBE_DEADLINE = 10.0
#: Seconds each call of the legitimate node may take.
LEGIT_DEADLINE = 5.0
#: Seconds a state on the other side of a socket may take to show.
SETTLE_DEADLINE = 10.0


# ------------------------------------------------------------ the node's actors


@trouper.message
class HPing(msgspec.Struct):
    n: int


class HPong(msgspec.Struct):
    n: int


@trouper.message
class HCount(msgspec.Struct):
    """Stream ``n`` items (at most 2,000)."""

    n: int


@trouper.message
class HHold(msgspec.Struct):
    """Stream ``n`` items (at most 10), then wait, as a quiet subscription does."""

    n: int


@trouper.message
class HWatch(msgspec.Struct):
    ref: trouper.ActorRef


class Echo(trouper.Actor):
    def __init__(self) -> None:
        self.quiet = trio.Event()  # never set

    @trouper.handler
    async def ping(self, msg: HPing) -> HPong:
        return HPong(msg.n + 1)

    @trouper.handler
    async def count(self, msg: HCount) -> AsyncIterator[int]:
        for i in range(max(0, min(msg.n, 2000))):
            yield i

    @trouper.handler
    async def hold(self, msg: HHold) -> AsyncIterator[int]:
        for i in range(max(0, min(msg.n, 10))):
            yield i
        await self.quiet.wait()

    @trouper.handler
    async def watch(self, msg: HWatch) -> None:
        self.ctx.watch(msg.ref)

    @trouper.handler
    async def terminated(self, msg: trouper.Terminated) -> None:
        pass


class Slow(Echo):
    """Takes a millisecond per ping: with ``mailbox_size=1``, tells park."""

    @trouper.handler
    async def ping(self, msg: HPing) -> HPong:
        await trio.sleep(0.001)
        return HPong(msg.n + 1)


class Sluggish(Echo):
    """Slow to start: concurrent spawns of it hit ``max_peer_requests``."""

    async def on_start(self) -> None:
        await trio.sleep(0.05)


class Fragile(Echo):
    """Cannot start: a spawn of it is refused."""

    async def on_start(self) -> None:
        raise ValueError("fragile by design")


class Listener(Echo):
    """Subscribed to the "hot" topic, with a small buffer."""

    async def on_start(self) -> None:
        self.ctx.subscribe("hot", buffer=4, policy="drop-oldest")


class Picky(Echo):
    """Its constructor checks its argument."""

    def __init__(self, n: int) -> None:
        super().__init__()
        if n < 0:
            raise ValueError("n must be >= 0")


# ------------------------------------------------------------ steps

#: Targets never stopped nor poisoned: the probes and the legitimate peer use them.
SAFE = ("probe", "service", "slow")
OTHERS = (
    "victim",
    "spawned",
    "dead",
    "stale",
    "unknown",
    "wrong-node",
    "legit-actor",
    "hostile-actor",
    "sys-cluster",
    "sys-agent",
    "sys-remote",
    "sys-root",
    "sys-deadletters",
    "sys-observer",
    "user-root",
    "weird-path",
)
WEIRD_PATHS = (
    "",
    "/",
    "//user//probe",
    "/user/probe/../probe",
    "/user/" + "é" * 50,
    "/user/" + "x" * 5000,
    "\x00",
)
SYSTEM_PATHS = {
    "sys-cluster": "/system/remote/cluster",
    "sys-agent": "/system/remote/agent",
    "sys-remote": "/system/remote",
    "sys-root": "/system",
    "sys-deadletters": "/system/deadletters",
    "sys-observer": "/system/observer",  # the admin agent every clustered node runs
    "user-root": "/user",
}
HARMLESS = (
    "ping",
    "int",
    "str",
    "none",
    "bytes",
    "unknown-type",
    "misfit",
    "bad-ref",
    "ref",
    "huge-int",
    "nested",
    "watch-me",
    "supervisor",
    "count",
    "hold",
)
DESTRUCTIVE = ("poison",)
IDS = ("fresh", "fresh", "reused", "zero", "max")
U64_MAX = 2**64 - 1
CREDIT_MAX = 2**32 - 1

Target = tuple[str, int]
# Half the time a live actor with a message it handles, so limits are reached.
any_target = st.tuples(st.one_of(st.sampled_from(SAFE), st.sampled_from(OTHERS)), st.integers(0, 7))
other_target = st.tuples(st.sampled_from(OTHERS), st.integers(0, 7))
harmless = st.one_of(st.just("ping"), st.sampled_from(HARMLESS))
any_payload = st.one_of(harmless, st.sampled_from(DESTRUCTIVE))


@attrs.frozen
class DoTell:
    target: Target
    payload: str
    count: int
    sender: str


@attrs.frozen
class DoAsk:
    target: Target
    payload: str
    ids: str
    count: int
    timeout: float | None


@attrs.frozen
class DoStreamOpen:
    target: Target
    payload: str
    ids: str
    credit: int
    count: int


@attrs.frozen
class DoStreamCredit:
    which: int  # < 0: an id never opened
    n: int


@attrs.frozen
class DoStreamCancel:
    which: int


@attrs.frozen
class DoProduce:
    """StreamItem / StreamEnd to the node, for streams it never opened."""

    id: int
    end: bool


@attrs.frozen
class DoCredit:
    target: Target
    n: int


@attrs.frozen
class DoWatch:
    target: Target
    count: int
    watcher: str


@attrs.frozen
class DoUnwatch:
    target: Target
    count: int


@attrs.frozen
class DoTerminated:
    target: Target


@attrs.frozen
class DoRegistry:
    owner: str
    names: int
    ref_node: str
    removed: int
    snapshot: bool
    long_names: bool


@attrs.frozen
class DoGroups:
    """A ``GroupUpdate``: ``members`` memberships over three groups."""

    owner: str
    members: int
    ref_node: str
    left: int
    snapshot: bool
    long_names: bool


@attrs.frozen
class DoGossip:
    members: int
    who: str
    address: str
    status: str
    incarnation: str
    salt: int


@attrs.frozen
class DoSpawn:
    cls: str
    args: str
    name: str
    mailbox: int | None
    ids: str
    count: int


@attrs.frozen
class DoStop:
    target: Target
    kill: bool
    ids: str


@attrs.frozen
class DoHeartbeat:
    seq: int
    sent_at: float


@attrs.frozen
class DoInterest:
    """Announce event subscribers: ``topics`` topics (255+ characters long
    if ``long_topics``), counts of 0 if ``zero``, as a snapshot or not."""

    topics: int
    long_topics: bool
    zero: bool
    snapshot: bool


@attrs.frozen
class DoPublish:
    """Publish an event on ``topic`` ("hot": the node's listener subscribes)."""

    topic: str
    payload: str
    k: int


@attrs.frozen
class DoAnswer:
    """A Reply, Failure or SpawnResult nobody on the node asked for."""

    kind: str
    id: int


@attrs.frozen
class DoFlood:
    """Past a limit on purpose (random steps reach some limits only rarely)."""

    kind: str


@attrs.frozen
class DoGoodbye:
    """The peer hangs up with an odd code (None: without a Goodbye), then
    dials again (a new incarnation after ``shutdown``: it left for good)."""

    code: str | None


ids = st.sampled_from(IDS)
credits = st.sampled_from([1, 3, 16, CREDIT_MAX])
#: One strategy per kind of step: each is a rule of the state machine.
STEP_STRATEGIES: tuple[Any, ...] = (
    st.builds(
        DoTell,
        any_target,
        harmless,
        st.integers(1, 40),
        st.sampled_from(["none", "hostile", "target", "legit"]),
    ),
    st.builds(DoTell, other_target, any_payload, st.integers(1, 3), st.just("none")),
    st.builds(
        DoAsk,
        any_target,
        harmless,
        ids,
        st.integers(1, 150),
        st.sampled_from([None, math.nan, -1.0, 0.0, math.inf, 1e-9, 1e300]),
    ),
    st.builds(DoAsk, other_target, any_payload, ids, st.integers(1, 3), st.none()),
    st.builds(
        DoStreamOpen,
        any_target,
        st.sampled_from(["count", "hold", "hold", "ping", "misfit", "unknown-type"]),
        ids,
        credits,
        st.integers(1, 10),
    ),
    st.builds(DoStreamOpen, other_target, any_payload, ids, credits, st.just(1)),
    st.builds(DoStreamCredit, st.integers(-1, 7), credits),
    st.builds(DoStreamCancel, st.integers(-1, 7)),
    st.builds(DoProduce, st.sampled_from([0, 1, 2**62, U64_MAX]), st.booleans()),
    st.builds(DoCredit, any_target, credits),
    st.builds(
        DoWatch, any_target, st.integers(1, 80), st.sampled_from(["hostile", "target", "legit"])
    ),
    st.builds(DoUnwatch, any_target, st.integers(1, 80)),
    st.builds(DoTerminated, any_target),
    st.builds(
        DoRegistry,
        st.sampled_from(["self", "self", "target", "legit", "stranger"]),
        st.one_of(st.integers(0, 60), st.just(5000)),
        st.sampled_from(["self", "target", "legit"]),
        st.integers(0, 60),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        DoGroups,
        st.sampled_from(["self", "self", "target", "legit", "stranger"]),
        st.one_of(st.integers(0, 60), st.just(5000)),
        st.sampled_from(["self", "target", "legit"]),
        st.integers(0, 60),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        DoGossip,
        st.sampled_from([0, 1, 3, 10, 300]),
        st.sampled_from(["fake-high", "fake-low", "target", "legit", "hostile", "mixed"]),
        st.sampled_from(
            [
                "none",
                "refused",
                "bogus-scheme",
                "garbage",
                "legit",
                "self",
                "many",
                "bad-port",
                "other-schemes",
            ]
        ),
        st.sampled_from(["up", "up", "down", "??"]),
        st.sampled_from(["same", "zero", "max"]),
        st.integers(0, 3),
    ),
    st.builds(
        DoSpawn,
        st.sampled_from(
            [
                "echo",
                "slow",
                "sluggish",
                "sluggish",
                "sluggish",
                "fragile",
                "picky",
                "struct",
                ".relative:X",
                "relative-own",
                "os:system",
                "**",
                "long",
                "unicode",
                "empty",
                ":",
                "builtins:__import__",
                "trouper.remote._actors:Agent",
                "dotted-qualname",
            ]
        ),
        st.sampled_from(
            [
                "empty",
                "empty",
                "empty",
                "not-a-pair",
                "swapped",
                "extra",
                "kw-name",
                "kw-self",
                "kw-cls",
                "kw-mailbox",
                "int-keys",
                "picky-ok",
                "picky-bad",
                "big",
            ]
        ),
        st.sampled_from(
            [
                "none",
                "none",
                "fresh",
                "fresh",
                "taken",
                "empty",
                "slash",
                "dollar",
                "long",
                "unicode",
            ]
        ),
        st.sampled_from([None, None, 1, 1, 0, 1001, U64_MAX]),
        ids,
        st.integers(1, 6),
    ),
    st.builds(DoStop, other_target, st.booleans(), ids),
    st.builds(
        DoHeartbeat,
        st.sampled_from([0, 1, U64_MAX]),
        st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf, 1e300]),
    ),
    st.builds(
        DoAnswer,
        st.sampled_from(["reply", "failure", "spawn-result"]),
        st.sampled_from([0, 1, 2, 2**62, U64_MAX]),
    ),
    st.builds(
        DoFlood,
        st.sampled_from(
            ["asks", "tells", "streams", "watches", "names", "groups", "spawns", "topics"]
        ),
    ),
    st.builds(DoInterest, st.integers(0, 40), st.booleans(), st.booleans(), st.booleans()),
    st.builds(
        DoPublish,
        st.sampled_from(["hot", "hot", "cold", "x" * 300]),
        any_payload,
        st.integers(0, 7),
    ),
    st.builds(
        DoGoodbye, st.sampled_from([None, "", "shutdown", "protocol-error", "x" * 500, "ünïcode"])
    ),
)
STEPS = st.one_of(*STEP_STRATEGIES)
