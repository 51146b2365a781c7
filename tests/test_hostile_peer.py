"""Property (issue 10, item 5): no envelope can crash a node.

A hostile but *authenticated* peer (``hostile_client.HostileClient``: a raw
TCP client that does the real cookie handshake, heartbeats and reads all it
is sent) sends random, well-formed envelopes to a real node, while a
legitimate second node keeps asking an actor on it. The node must never die,
never leak, and never let the legitimate peer down.

Design. Hypothesis's stateful machines are synchronous, and a node is an
async context; driving rules through a trio portal from another thread
would share two live nodes between examples, so that one example's leftovers
blur the next and shrinking stops being reliable. So each example is a whole
*program* instead: ``@given`` draws a list of steps (``hostile_steps``:
frozen attrs classes, so a failure prints readably, with their strategies),
and the example runs it inside one ``trio.run`` with two fresh nodes on
``tcp://127.0.0.1:0``. Hypothesis shrinks the list (fewer steps, simpler
steps) as it would a state machine's rules. Steps name things symbolically
(a ``target`` is ``("victim", 2)``, not a uid); ``hostile_world.World``
resolves them against the live nodes when the step runs, so shrinking never
produces a step that cannot run. Besides random steps, ``DoFlood`` goes past
one limit on purpose, so every limit is reached in some examples (see
``--hypothesis-show-statistics``). Real sockets forbid trio's autojump
clock: time is real, and every wait is bounded by ``trio.fail_after`` (or by
the client's ``wait_for``, which wakes on each arrival, or by polling a
public statistic with a deadline) -- nothing sleeps to synchronise.

After each step the hostile client sends a *probe* (an ask of ``/user/probe``
with an id from a range no step uses) and waits for its reply: the node's
reader handles envelopes in order, so the reply means every envelope of the
step was handled, and it also proves the hostile link is still up. Then:

* the node lives: ``kernel.failure`` is None; its guardians, its remote
  system actors (``/system/remote/cluster``, ``.../agent``, ``/system/remote``)
  and the three actors the probe and the legitimate peer use are alive with
  the uids they started with; nothing on the node has restarted;
* the legitimate node made progress since the step began (a background loop
  asks, and every tenth time streams, ``/user/service`` with a deadline),
  none of its calls failed, and each node sees the other up and connected;
* what the hostile peer holds is within the configured limits (small, so
  they are hit): ``PeerStatistics`` streams_in, watched_by, names, requests
  exactly; parked and inbound_asks within one step's envelopes (the reader
  checks its limits between reads, so it may overshoot by one read); no
  credit table for it (this node never told it anything); the node knows
  at most ``max_peers`` peers and runs at most that many gossip links; these
  bounds are also checked at every arrival, while a probe waits (the reader
  may be paused at a limit then);
* every stream the peer opened on an actor that is gone has ended (its
  ``StreamEnd`` arrives), and the node produces no stream the peer has not
  opened, cancelled or seen end.

At the end the peer leaves (``Goodbye`` with code ``shutdown``), the actors
the program created are stopped, and everything returns to the baseline
taken before it connected: actor, task, name and timer counts, name waiters,
ask-timeout queues, every Trio task in the process, the registry, both
nodes' view of each other, and the departed peer's ``PeerStatistics``
(all zeros). That is polled with a deadline, since the state is on the other
side of a socket.

The default 200 examples (derandomised: the same programs every run) take
about 15 s; ``HOSTILE_EXAMPLES=2000`` runs a longer search, and
``HOSTILE_RANDOM=1`` makes it random (hypothesis prints a reproducer blob).
"""

from __future__ import annotations

import os
from typing import Any

import msgspec
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import hostile_steps
import trouper
from hostile_client import HostileClient
from hostile_steps import (
    HOSTILE,
    LEGIT,
    PROBE_DEADLINE,
    STEPS,
    SYSTEM_PATHS,
    TARGET,
    Echo,
    HCount,
    HPing,
    HPong,
    Slow,
)
from hostile_world import RUNNERS, LegitLoad, World, all_stats, eventually, peer_stats
from trouper.protocols import Ask, Goodbye, Reply, WireRef, default_registry
from trouper.remote import PeerStatistics

COOKIE = b"hostile-cookie"
MIB = 1024 * 1024
LIMITS: dict[str, Any] = {
    "max_streams": 8,
    "max_watches": 50,
    "max_names": 20,
    "max_group_members": 20,
    "max_group_name": 64,
    "max_peers": 5,
    "tell_window": 16,
    "max_parked": 120,
    "max_inbound_asks": 100,
    "max_peer_requests": 4,
    "max_remote_mailbox": 1000,
    "max_outbox_bytes": 4 * MIB,
}
#: Envelopes one step sends at most (the slack of the limits checked between reads).
STEP_ENVELOPES = 300
EXAMPLE_DEADLINE = 120.0
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "200"))
RANDOM = os.environ.get("HOSTILE_RANDOM", "") not in ("", "0")


# ------------------------------------------------------------ invariants


async def probe(w: World) -> None:
    """An ask the node must answer: the step's envelopes were all handled
    (the reader keeps their order), and the hostile link is still up."""
    client = w.client
    id = next(w.probe_ids)
    name, payload = default_registry.encode_payload(HPing(7))
    await client.send([Ask(id, w.safe["probe"], name, msgspec.Raw(payload))])
    await client.wait_for(
        lambda: client.answer(id) is not None or not client.up, PROBE_DEADLINE, f"probe {id}"
    )
    assert client.up, "the node closed the hostile peer's connection"
    answer = client.answer(id)
    assert isinstance(answer, Reply), answer
    assert msgspec.msgpack.decode(answer.payload, type=HPong) == HPong(8)


async def check_streams_end(w: World) -> None:
    """A stream whose actor is gone (stopped, or never there) ends: its
    consumer hears so, and the node frees its slot."""
    kernel = w.target.kernel
    orphans = [
        id
        for id in w.live_streams()
        if kernel.cell_at(w.stream_targets[id].path, w.stream_targets[id].uid) is None
        or w.stream_targets[id].node != TARGET
    ]
    ends = w.client.stream_ends
    await w.client.wait_for(
        lambda: all(id in ends for id in orphans), PROBE_DEADLINE, f"StreamEnd of {orphans}"
    )


def check_alive(w: World) -> None:
    target = w.target
    assert target.kernel.failure is None, target.kernel.failure
    for path, uid in w.system.items():
        assert target.kernel.cell_at(path, uid) is not None, f"{path} died (or was restarted)"
    assert target.stats().restarts == 0, "an actor of the node restarted"
    for kind, wire in w.safe.items():
        assert target.kernel.cell_at(wire.path, wire.uid) is not None, f"{kind} died"
    assert not w.load.failures, w.load.failures
    assert not w.client.goodbyes, w.client.goodbyes
    seen = peer_stats(w.legit, TARGET)
    assert seen.status == "up" and seen.connected, seen
    stats = all_stats(target)
    seen = stats[LEGIT]
    assert seen.status == "up" and seen.connected, seen
    assert len(stats) <= LIMITS["max_peers"], sorted(stats)
    # Gossip cannot make it dial more nodes than it may know.
    links = [p for p in target.kernel.paths if p.startswith("/system/remote/cluster/")]
    assert len(links) <= LIMITS["max_peers"], links


def check_bounded(w: World) -> None:
    """What the hostile peer makes the node hold stays within its limits."""
    s = peer_stats(w.target, HOSTILE)
    assert s.streams_in <= LIMITS["max_streams"], s
    assert s.watched_by <= LIMITS["max_watches"], s
    assert s.names <= LIMITS["max_names"], s
    assert s.group_members <= LIMITS["max_group_members"], s
    assert s.requests <= LIMITS["max_peer_requests"], s
    # Checked between reads: one read may carry a step's worth beyond.
    assert s.inbound_asks <= LIMITS["max_inbound_asks"] + STEP_ENVELOPES, s
    assert s.parked <= LIMITS["max_parked"] + STEP_ENVELOPES, s
    assert s.parked_targets <= s.parked, s
    assert s.outbox_bytes <= LIMITS["max_outbox_bytes"] * 4, s
    # This node never tells the hostile peer anything, so it keeps no credit
    # for it, whatever Credit envelopes it is sent.
    assert s.credit_targets == 0 and s.credit_waiters == 0, s
    assert s.pending_asks == 0 and s.streams_out == 0, s
    if w.fresh_streams:
        # Every stream the node still produces is one the peer opened and
        # has neither cancelled nor seen end (a producer whose actor stopped
        # must end, or its slot is lost for good).
        assert s.streams_in <= len(w.live_streams()), (s, w.live_streams())
    # Which limits the example reached (--hypothesis-show-statistics).
    for field, limit in (
        ("streams_in", "max_streams"),
        ("watched_by", "max_watches"),
        ("names", "max_names"),
        ("group_members", "max_group_members"),
        ("requests", "max_peer_requests"),
        ("inbound_asks", "max_inbound_asks"),
        ("parked", "max_parked"),
    ):
        if getattr(s, field) >= LIMITS[limit]:
            w.reached.add(f"reached {limit}")
    if s.parked_targets:
        w.reached.add("tells parked")
    if s.paused:
        w.reached.add("reader paused")


#: Fields of PeerStatistics that must be back where they were once all is quiet
#: (the outbox comes and goes with heartbeats).
QUIET_FIELDS = (
    "status",
    "connected",
    "pending_asks",
    "inbound_asks",
    "parked",
    "parked_targets",
    "streams_out",
    "streams_in",
    "watching",
    "watched_by",
    "names",
    "group_members",
    "requests",
    "credit_targets",
    "owed_targets",
    "credit_waiters",
)
GONE = {field: 0 for field in QUIET_FIELDS if field not in ("status", "connected")}


def _quiet(s: PeerStatistics) -> dict[str, Any]:
    return {field: getattr(s, field) for field in QUIET_FIELDS}


def _tasks() -> int:
    """Every Trio task in this run."""
    count = 0
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        count += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return count


def quiet_state(target: trouper.Node, legit: trouper.Node) -> dict[str, Any]:
    # A cell fed from the network keeps its task a moment after its last
    # message (the legitimate node keeps asking): not a leak, so not counted.
    lingering = target.stats().lingering + legit.stats().lingering
    state: dict[str, Any] = {"trio tasks": _tasks() - lingering}
    for node in (target, legit):
        stats = node.stats()
        state[node.id] = {
            "actors": stats.actors,
            "tasks": stats.tasks,
            "names": stats.names,
            "restarts": stats.restarts,
            "timers": stats.timers,
            "name waiters": node.kernel.names.waiting,
            "ask queues": node.kernel.timers.ask_queues,
            "registry": node.registry.names(),
            "groups": {g: node.registry.members(g) for g in node.registry.groups()},
            "peers": {peer: _quiet(s) for peer, s in all_stats(node).items() if peer != HOSTILE},
        }
    return state


async def settle(w: World, baseline: dict[str, Any]) -> None:
    """After the peer left: what it held is released, what it made is
    stopped, and the nodes are back at the baseline."""
    departed = {"status": "down", "connected": False, **GONE}
    await eventually(
        lambda: _quiet(peer_stats(w.target, HOSTILE)) == departed,
        f"the departed peer still holds something: {peer_stats(w.target, HOSTILE)}",
    )
    # What the program started on the node (spawned by the peer): ours to stop.
    base = baseline[TARGET]
    kernel = w.target.kernel
    for path in [p for p in kernel.paths if p.startswith("/user/") and p.count("/") == 2]:
        cell = kernel.cell_at(path)
        if cell is not None and path not in base["user"]:
            await w.target.stop(cell.ref)
    try:
        await eventually(
            lambda: quiet_state(w.target, w.legit) == baseline["state"], "back to the baseline"
        )
    except AssertionError as exc:
        now = quiet_state(w.target, w.legit)
        raise AssertionError(f"{exc}: {_diff(baseline['state'], now)}") from None


def _diff(before: Any, after: Any, where: str = "") -> list[str]:
    """Where two nested snapshots differ, as ``path: before -> after``."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            line
            for key in sorted(before.keys() | after.keys(), key=str)
            for line in _diff(before.get(key), after.get(key), f"{where}/{key}")
        ]
    return [] if before == after else [f"{where}: {before!r} -> {after!r}"]


# ------------------------------------------------------------ one example


async def run_program(program: list[Any]) -> None:
    with trio.fail_after(EXAMPLE_DEADLINE):
        async with (
            trouper.open_node(
                TARGET,
                listen="tcp://127.0.0.1:0",
                cookie=COOKIE,
                allow_spawn=(f"{hostile_steps.__name__}:*",),
                **LIMITS,
            ) as target,
            trouper.open_node(
                LEGIT, listen="tcp://127.0.0.1:0", seeds=target.addresses, cookie=COOKIE
            ) as legit,
        ):
            await legit.wait_for_members(2, timeout=10)
            await target.wait_for_members(2, timeout=10)
            safe = {
                "probe": await target.spawn(Echo, name="probe"),
                "service": await target.spawn(Echo, name="service"),
                "slow": await target.spawn(Slow, name="slow", mailbox_size=1),
            }
            helper = await legit.spawn(Echo, name="helper")
            service = await legit.lookup("service", timeout=10)
            assert service is not None and await target.lookup("helper", timeout=10) == helper
            # The agent's task host starts with its first request and stays:
            # part of the baseline, not of what the hostile peer leaves.
            await legit.stop(await legit.spawn(Echo, on=TARGET))
            for ref in safe.values():  # so do an actor's (where its streams run)
                async with ref.stream(HCount(1)) as items:
                    assert [x async for x in items] == [0]
            baseline = {
                "state": quiet_state(target, legit),
                TARGET: {"user": {ref.path for ref in safe.values()}},
            }
            system = {}
            for path in SYSTEM_PATHS.values():
                cell = target.kernel.cell_at(path)
                assert cell is not None, path
                system[path] = cell.ref.uid
            victims = [await target.spawn(Echo, name=f"victim-{i}") for i in range(3)]
            dead = await target.spawn(Echo)
            await target.stop(dead)

            def wire(ref: trouper.ActorRef) -> WireRef:
                return WireRef(ref.node_id, ref.path, ref.uid)

            async with trio.open_nursery() as nursery:
                load = LegitLoad(service)
                nursery.start_soon(load.run)
                client = HostileClient(target.addresses[0], HOSTILE, COOKIE, nursery)
                await client.connect()
                w = World(
                    target,
                    legit,
                    client,
                    {kind: wire(ref) for kind, ref in safe.items()},
                    [wire(v) for v in victims],
                    wire(dead),
                    wire(helper),
                    load,
                    system,
                )
                # Bounded at every arrival too, not only between steps (the
                # reader may be paused at a limit while a probe waits).
                client.observer = lambda: check_bounded(w)
                await probe(w)
                for step in program:
                    before = load.done
                    await RUNNERS[type(step)](w, step)
                    await probe(w)
                    await load.progressed(before)
                    check_alive(w)
                    check_bounded(w)
                    await check_streams_end(w)
                # The peer leaves for good; the legitimate node stops asking.
                client.observer = None
                for what in sorted(w.reached):
                    event(what)
                assert client.conn is not None
                await client.send([Goodbye("done", "shutdown")])
                with trio.fail_after(PROBE_DEADLINE):
                    await client.conn.closed.wait()
                nursery.cancel_scope.cancel()
            check_alive(w)
            await settle(w, baseline)
        assert not target.kernel.failure


@settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=RANDOM,
)
@given(st.lists(STEPS, min_size=3, max_size=40))
def test_a_hostile_peer_cannot_hurt_the_node(program: list[Any]) -> None:
    trio.run(run_program, program)
