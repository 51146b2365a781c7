"""How ``test_hostile_peer`` carries out each step of ``hostile_steps``:
``World`` holds the two live nodes, the hostile client and what the program
did so far, and resolves the steps' symbolic names; ``RUNNERS`` sends each
step's envelopes. ``LegitLoad`` is the legitimate node's traffic.
"""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import msgspec
import trio

import trouper
from hostile_client import HostileClient
from hostile_steps import (
    HOSTILE,
    LEGIT,
    LEGIT_DEADLINE,
    PROBE_DEADLINE,
    SETTLE_DEADLINE,
    SYSTEM_PATHS,
    TARGET,
    U64_MAX,
    WEIRD_PATHS,
    DoAnswer,
    DoAsk,
    DoCredit,
    DoFlood,
    DoGoodbye,
    DoGossip,
    DoGroups,
    DoHeartbeat,
    DoProduce,
    DoRegistry,
    DoSpawn,
    DoStop,
    DoStreamCancel,
    DoStreamCredit,
    DoStreamOpen,
    DoTell,
    DoTerminated,
    DoUnwatch,
    DoWatch,
    HCount,
    HHold,
    HPing,
    HPong,
    HWatch,
    Target,
)
from trouper.protocols import (
    Ask,
    Credit,
    ErrorDetail,
    Failure,
    Goodbye,
    Gossip,
    GroupUpdate,
    Heartbeat,
    Member,
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
    default_registry,
)
from trouper.remote import PeerStatistics, Remoting

# ------------------------------------------------------------ the world


def _name(tp: type) -> str:
    return f"{tp.__module__}:{tp.__qualname__}"


def _raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.msgpack.encode(value))


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


class LegitLoad:
    """The legitimate node's calls to ``/user/service``, one after another,
    each within ``LEGIT_DEADLINE``: asks, and every tenth a short stream."""

    def __init__(self, service: trouper.ActorRef) -> None:
        self.service = service
        self.done = 0
        self.failures: list[str] = []
        self._progress = trio.Event()

    async def run(self) -> None:
        for i in itertools.count():
            try:
                with trio.fail_after(LEGIT_DEADLINE):
                    if i % 10 == 9:
                        async with self.service.stream(HCount(5)) as items:
                            got: Any = [x async for x in items]
                        assert got == [0, 1, 2, 3, 4], got
                    else:
                        got = await self.service.ask(HPing(i), timeout=LEGIT_DEADLINE)
                        assert got == HPong(i + 1), got
            except (trouper.TrouperError, trio.TooSlowError, AssertionError) as exc:
                self.failures.append(f"call {i}: {exc!r}")
            self.done += 1
            self._progress.set()
            self._progress = trio.Event()

    async def progressed(self, since: int) -> None:
        with trio.fail_after(2 * LEGIT_DEADLINE):
            while self.done <= since:
                await self._progress.wait()


@attrs.define
class World:
    """Two live nodes, the hostile client, and what the program did so far."""

    target: trouper.Node
    legit: trouper.Node
    client: HostileClient
    safe: dict[str, WireRef]
    victims: list[WireRef]
    dead: WireRef
    legit_actor: WireRef
    load: LegitLoad
    system: dict[str, int]
    ask_ids: Any = attrs.field(factory=lambda: itertools.count(1))
    stream_ids: Any = attrs.field(factory=lambda: itertools.count(1))
    probe_ids: Any = attrs.field(factory=lambda: itertools.count(2**62))
    serial: Any = attrs.field(factory=itertools.count)
    last_ask: int | None = None
    opened: list[int] = attrs.field(factory=list)
    #: Every stream id of this connection was fresh (so ``opened`` is exact).
    fresh_streams: bool = True
    #: Whom each stream was opened on.
    stream_targets: dict[int, WireRef] = attrs.field(factory=dict)
    reached: set[str] = attrs.field(factory=set)

    def wire(self, target: Target) -> WireRef:
        kind, k = target
        if kind in self.safe:
            return self.safe[kind]
        probe = self.safe["probe"]
        if kind == "victim":
            return self.victims[k % len(self.victims)]
        if kind == "spawned":
            spawned = self.client.spawned
            if spawned:
                return spawned[k % len(spawned)]
            kind = "unknown"
        if kind == "dead":
            return self.dead
        if kind == "stale":
            return WireRef(TARGET, probe.path, probe.uid + 1000 + k)
        if kind == "unknown":
            return WireRef(TARGET, f"/user/nobody-{k}", k)
        if kind == "wrong-node":
            return WireRef(f"elsewhere-{k}", probe.path, probe.uid)
        if kind == "legit-actor":
            return self.legit_actor
        if kind == "hostile-actor":
            return WireRef(HOSTILE, f"/user/h{k}", k + 1)
        if kind == "weird-path":
            return WireRef(TARGET, WEIRD_PATHS[k % len(WEIRD_PATHS)], k)
        path = SYSTEM_PATHS[kind]
        cell = self.target.kernel.cell_at(path)
        assert cell is not None, f"{path} is gone"
        return WireRef(TARGET, path, cell.ref.uid)

    def ask_id(self, kind: str) -> int:
        if kind == "zero":
            return 0
        if kind == "max":
            return U64_MAX
        if kind == "reused" and self.last_ask is not None:
            return self.last_ask
        self.last_ask = next(self.ask_ids)
        return self.last_ask

    def stream_id(self, kind: str) -> int:
        live = self.live_streams()
        if kind == "zero":
            return 0
        if kind == "max":
            return U64_MAX
        if kind == "reused" and live:
            return live[-1]
        return next(self.stream_ids)

    def live_streams(self) -> list[int]:
        ends = self.client.stream_ends
        return [i for i in self.opened if i not in ends]

    def live_stream(self, which: int) -> int:
        live = self.live_streams()
        return 10**12 if which < 0 or not live else live[which % len(live)]

    def payload(self, kind: str, k: int) -> tuple[str, msgspec.Raw]:
        if kind in ("ping", "count", "hold"):
            msg = {"ping": HPing, "count": HCount, "hold": HHold}[kind](
                k * 100 if kind == "count" else k
            )
            name, data = default_registry.encode_payload(msg)
            return name, msgspec.Raw(data)
        if kind == "watch-me":
            ref = [HOSTILE, f"/user/h{k}", k + 1] if k % 2 else [TARGET, "/user/nobody", 3]
            return _name(HWatch), _raw({"ref": ref})
        simple: dict[str, tuple[str, Any]] = {
            "int": ("builtins:int", k),
            "str": ("builtins:str", "hello"),
            "none": ("builtins:NoneType", None),
            "bytes": ("builtins:bytes", b"x" * (k * 1000)),
            "unknown-type": ("nowhere:Nothing", 1),
            "misfit": (_name(HPing), "not a ping"),
            "bad-ref": ("trouper:ActorRef", [1, 2, 3]),
            "ref": ("trouper:ActorRef", [HOSTILE, "/user/x", 1]),
            "huge-int": (_name(HPing), {"n": U64_MAX}),
            "nested": ("builtins:list", _nested(100)),
            "supervisor": (
                ("trouper:TerminateChild", {"id": "probe"})
                if k % 2
                else ("trouper:WhichChildren", {})
            ),
            "poison": ("trouper:PoisonPill", {}),
        }
        name, value = simple[kind]
        return name, _raw(value)

    def node_wire(self, which: str, k: int) -> WireRef | None:
        return {
            "none": None,
            "hostile": WireRef(HOSTILE, f"/user/h{k}", k + 1),
            "target": self.safe["probe"],
            "legit": self.legit_actor,
        }[which]


# ------------------------------------------------------------ running a step


async def run_tell(w: World, s: DoTell) -> None:
    name, payload = w.payload(s.payload, s.target[1])
    env = Tell(w.wire(s.target), name, payload, w.node_wire(s.sender, s.target[1]))
    await w.client.send([env] * s.count)


async def run_ask(w: World, s: DoAsk) -> None:
    target = w.wire(s.target)
    name, payload = w.payload(s.payload, s.target[1])
    await w.client.send(
        [Ask(w.ask_id(s.ids), target, name, payload, None, s.timeout) for _ in range(s.count)]
    )


async def run_stream_open(w: World, s: DoStreamOpen) -> None:
    name, payload = w.payload(s.payload, s.target[1])
    ids = [w.stream_id(s.ids) for _ in range(s.count)]
    w.fresh_streams &= s.ids == "fresh"
    w.stream_targets.update((id, w.wire(s.target)) for id in ids)
    # Counted as opened before they are sent: the node (in this process) may
    # take them, and the client's reader check the bounds, while the send
    # waits for the socket.
    w.opened.extend(id for id in dict.fromkeys(ids) if id not in w.opened)
    await w.client.send([StreamOpen(id, w.wire(s.target), name, payload, s.credit) for id in ids])


async def run_stream_credit(w: World, s: DoStreamCredit) -> None:
    await w.client.send([StreamCredit(w.live_stream(s.which), s.n)])


async def run_stream_cancel(w: World, s: DoStreamCancel) -> None:
    id = w.live_stream(s.which)
    await w.client.send([StreamCancel(id, "hostile")])
    if id in w.opened:
        w.opened.remove(id)


async def run_produce(w: World, s: DoProduce) -> None:
    name, payload = w.payload("ping", 1)
    env: Any = (
        StreamEnd(s.id, ErrorDetail("Hostile", "made up"))
        if s.end
        else StreamItem(s.id, name, payload)
    )
    await w.client.send([env])


async def run_credit(w: World, s: DoCredit) -> None:
    await w.client.send([Credit(w.wire(s.target), s.n)])


async def run_watch(w: World, s: DoWatch) -> None:
    watcher = w.node_wire(s.watcher, 0)
    assert watcher is not None
    await w.client.send([Watch(watcher, w.wire(s.target))] * s.count)


async def run_unwatch(w: World, s: DoUnwatch) -> None:
    watcher = w.node_wire("hostile", 0)
    assert watcher is not None
    await w.client.send([Unwatch(watcher, w.wire(s.target))] * s.count)


async def run_terminated(w: World, s: DoTerminated) -> None:
    await w.client.send([Terminated(w.wire(s.target), "hostile says so")])


async def run_registry(w: World, s: DoRegistry) -> None:
    owner = {"self": HOSTILE, "target": TARGET, "legit": LEGIT, "stranger": "stranger"}[s.owner]
    node = {"self": HOSTILE, "target": TARGET, "legit": LEGIT}[s.ref_node]
    names = ["service", "probe"] + [
        ("n" * 250 if s.long_names else "h") + f"-{i}" for i in range(s.names)
    ]
    added = {
        name: WireRef(node, f"/user/named-{i}", i + 1) for i, name in enumerate(names[: s.names])
    }
    removed = {name: WireRef(node, "/user/x", 1) for name in names[: s.removed]}
    await w.client.send([RegistryUpdate(owner, added, removed, s.snapshot)])


async def run_groups(w: World, s: DoGroups) -> None:
    owner = {"self": HOSTILE, "target": TARGET, "legit": LEGIT, "stranger": "stranger"}[s.owner]
    node = {"self": HOSTILE, "target": TARGET, "legit": LEGIT}[s.ref_node]
    groups = [("g" * 300 if s.long_names and i == 0 else "g") + f"-{i}" for i in range(3)]
    refs = [WireRef(node, f"/user/member-{i}", i + 1) for i in range(s.members)]
    joined = {g: refs[i::3] for i, g in enumerate(groups)}
    left = {g: refs[: s.left] for g in groups}
    await w.client.send([GroupUpdate(owner, joined, left, s.snapshot)])


async def run_gossip(w: World, s: DoGossip) -> None:
    cycle = ("fake-high", "fake-low", "target", "legit", "hostile")
    real = {
        TARGET: _incarnation(w.target),
        LEGIT: _incarnation(w.legit),
        HOSTILE: w.client.incarnation,
    }
    addresses = {
        "none": [],
        "refused": ["tcp://127.0.0.1:1"],
        "bogus-scheme": ["bogus://127.0.0.1:1"],
        "garbage": ["not a url at all"],
        "legit": list(w.legit.addresses),
        "self": list(w.target.addresses),
        "many": [f"tcp://127.0.0.1:{i}" for i in range(1, 51)],
        "bad-port": ["tcp://127.0.0.1:99999"],
        # The legitimate node's port, over schemes it does not speak there
        # (quic:// and tls:// without TLS settings on this node).
        "other-schemes": [
            w.legit.addresses[0].replace("tcp://", scheme)
            for scheme in ("tls://", "ws://", "quic://")
        ][s.salt % 3 :],
    }[s.address]
    members = []
    for i in range(s.members):
        who = cycle[i % len(cycle)] if s.who == "mixed" else s.who
        node = {
            "fake-high": f"z-fake-{s.salt}-{i}",
            "fake-low": f"0-fake-{s.salt}-{i}",
            "target": TARGET,
            "legit": LEGIT,
            "hostile": HOSTILE,
        }[who]
        incarnation = {"same": real.get(node, 1), "zero": 0, "max": U64_MAX}[s.incarnation]
        members.append(Member(node, incarnation, addresses, s.status, 0))
    await w.client.send([Gossip(members)])


def _incarnation(node: trouper.Node) -> int:
    remoting = node.remote
    assert isinstance(remoting, Remoting)
    return remoting.incarnation


SPAWN_CLASSES = {
    "echo": f"{__name__}:Echo",
    "slow": f"{__name__}:Slow",
    "sluggish": f"{__name__}:Sluggish",
    "fragile": f"{__name__}:Fragile",
    "picky": f"{__name__}:Picky",
    "struct": f"{__name__}:HPing",
    "relative-own": f".{__name__}:Echo",
    "long": "a" * 10_000 + ":X",
    "unicode": "módulo:Écho",
    "empty": "",
    "dotted-qualname": f"{__name__}:Echo.ping",
}
SPAWN_ARGS: dict[str, Any] = {
    "empty": [[], {}],
    "not-a-pair": 5,
    "swapped": [{}, []],
    "extra": [[1, 2, 3, 4, 5], {}],
    "kw-name": [[], {"name": "x"}],
    "kw-self": [[], {"self": 1}],
    "kw-cls": [[], {"cls": 1}],
    "kw-mailbox": [[], {"mailbox_size": 0}],
    "int-keys": [[], {1: 2}],
    "picky-ok": [[3], {}],
    "picky-bad": [[-1], {}],
    "big": [["x" * 60_000], {}],
}


async def run_spawn(w: World, s: DoSpawn) -> None:
    path = SPAWN_CLASSES.get(s.cls, s.cls)
    envs = []
    for _ in range(s.count):
        n = next(w.serial)
        name = {
            "none": None,
            "fresh": f"spawned-{n}",
            "taken": "probe",
            "empty": "",
            "slash": "a/b",
            "dollar": "$x",
            "long": "n" * 300,
            "unicode": f"名前-{n}",
        }[s.name]
        envs.append(Spawn(w.ask_id(s.ids), path, _raw(SPAWN_ARGS[s.args]), name, s.mailbox))
    await w.client.send(envs)


async def run_stop(w: World, s: DoStop) -> None:
    await w.client.send([Stop(w.ask_id(s.ids), w.wire(s.target), s.kill)])


async def run_heartbeat(w: World, s: DoHeartbeat) -> None:
    await w.client.send([Heartbeat(s.seq, s.sent_at)])


async def run_goodbye(w: World, s: DoGoodbye) -> None:
    client = w.client
    conn = client.conn
    assert conn is not None
    if s.code is None:
        await client.close()  # without a word: the node sees the stream end
    else:
        await client.send([Goodbye("hostile goodbye " * 10, s.code)])
        with trio.fail_after(PROBE_DEADLINE):
            await conn.closed.wait()  # the node hangs up, as asked
    left = s.code == "shutdown"
    await eventually(
        lambda: (
            peer_stats(w.target, HOSTILE).status == "down"
            if left
            else not peer_stats(w.target, HOSTILE).connected
        ),
        "the node saw the hostile peer go",
    )
    if left:
        client.incarnation += 1  # it left for good: only a new incarnation may come back
    w.opened.clear()  # its streams ended with the connection
    w.fresh_streams = True
    await client.connect()


FLOODS: dict[str, Any] = {
    "asks": DoAsk(("slow", 0), "ping", "fresh", 150, None),
    "tells": DoTell(("slow", 0), "ping", 40, "none"),
    "streams": DoStreamOpen(("probe", 0), "hold", "fresh", 1, 10),
    "watches": DoWatch(("victim", 0), 60, "hostile"),
    "names": DoRegistry("self", 30, "self", 0, False, False),
    "groups": DoGroups("self", 30, "self", 0, False, False),
    "spawns": DoSpawn("sluggish", "empty", "none", None, "fresh", 6),
}


async def run_answer(w: World, s: DoAnswer) -> None:
    name, payload = w.payload("ping", 1)
    env: Any = {
        "reply": Reply(s.id, name, payload),
        "failure": Failure(s.id, "trouper.ActorDead", "made up", error_code="actor-dead"),
        "spawn-result": SpawnResult(s.id, w.safe["probe"]),
    }[s.kind]
    await w.client.send([env])


async def run_flood(w: World, s: DoFlood) -> None:
    step = FLOODS[s.kind]
    await RUNNERS[type(step)](w, step)


RUNNERS: dict[type, Any] = {
    DoAnswer: run_answer,
    DoFlood: run_flood,
    DoTell: run_tell,
    DoAsk: run_ask,
    DoStreamOpen: run_stream_open,
    DoStreamCredit: run_stream_credit,
    DoStreamCancel: run_stream_cancel,
    DoProduce: run_produce,
    DoCredit: run_credit,
    DoWatch: run_watch,
    DoUnwatch: run_unwatch,
    DoTerminated: run_terminated,
    DoRegistry: run_registry,
    DoGroups: run_groups,
    DoGossip: run_gossip,
    DoSpawn: run_spawn,
    DoStop: run_stop,
    DoHeartbeat: run_heartbeat,
    DoGoodbye: run_goodbye,
}


# ------------------------------------------------------------ statistics


def all_stats(node: trouper.Node) -> dict[str, PeerStatistics]:
    remoting = node.remote
    assert isinstance(remoting, Remoting)
    return remoting.statistics()


def peer_stats(node: trouper.Node, node_id: str) -> PeerStatistics:
    return all_stats(node)[node_id]


async def eventually(predicate: Any, what: str, timeout: float = SETTLE_DEADLINE) -> None:
    """Poll a public statistic (the state is on the other side of a socket)."""
    try:
        with trio.fail_after(timeout):
            while True:
                if predicate():
                    return
                await trio.sleep(0.01)
    except trio.TooSlowError:
        raise AssertionError(f"not within {timeout}s: {what}") from None
