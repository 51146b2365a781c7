"""Property: random supervision trees under random crash schedules never hang,
leave nothing behind, and lose no system message.

Each example is one ``trio.run`` under an autojump MockClock (hypothesis and
async fixtures do not mix), so virtual time makes backoffs and intensity
windows free, and a hang shows up at once as ``trio.TooSlowError``.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
from typing import Any

import attrs
import msgspec
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import trouper


class Boom(Exception):
    pass


class Crash(msgspec.Struct):
    pass


class Exit(msgspec.Struct):
    pass


class Ping(msgspec.Struct):
    pass


class Hang(msgspec.Struct):
    pass


class Watch(msgspec.Struct):
    ref: Any


#: instance serial numbers (``id()`` may be reused once an instance is freed)
SERIALS = itertools.count()


class Shared:
    """State the actors of one example share with the test body."""

    def __init__(self) -> None:
        #: path -> the instance that ran on_start last and has not stopped
        #: (a killed instance runs no on_stop: its entry may linger)
        self.alive: dict[str, int] = {}
        #: paths of the actors blocked in a Hang handler right now
        self.hung: set[str] = set()
        self.watcher: trouper.ActorRef | None = None
        self.flaky: dict[str, int] = {}


class Mixin:
    """Lifecycle bookkeeping shared by workers and supervisors."""

    ctx: trouper.ActorContext
    label: str
    shared: Shared
    serial: int

    def _started(self) -> None:
        self.serial = next(SERIALS)
        self.shared.alive[self.ctx.self_ref.path] = self.serial
        assert self.shared.watcher is not None
        self.shared.watcher.tell_nowait(Watch(self.ctx.self_ref))

    def _stopped(self) -> None:
        assert self.shared.alive.pop(self.ctx.self_ref.path) == self.serial

    async def _restarted(self) -> None:
        if self.shared.flaky.get(self.label, 0) > 0:
            self.shared.flaky[self.label] -= 1
            raise Boom(f"{self.label} on_restart")

    @trouper.handler
    async def crash(self, msg: Crash) -> None:
        raise Boom(self.label)

    @trouper.handler
    async def exit(self, msg: Exit) -> None:
        self.ctx.stop()

    @trouper.handler
    async def ping(self, msg: Ping) -> int:
        return self.serial

    @trouper.handler
    async def hang(self, msg: Hang) -> None:
        path = self.ctx.self_ref.path
        self.shared.hung.add(path)
        try:
            await trio.sleep_forever()
        finally:
            self.shared.hung.discard(path)


class Worker(Mixin, trouper.Actor):
    def __init__(self, label: str, shared: Shared, background: bool, hang_stop: bool) -> None:
        self.label = label
        self.shared = shared
        self.background = background
        self.hang_stop = hang_stop

    async def on_start(self) -> None:
        if self.background:
            self.ctx.start_soon(trio.sleep_forever)
        self._started()

    async def on_stop(self) -> None:
        self._stopped()
        if self.hang_stop:
            await trio.sleep_forever()  # killed after its shutdown time

    async def on_restart(self, exc: BaseException) -> None:
        await self._restarted()


class Sup(Mixin, trouper.Supervisor):
    def __init__(self, label: str, shared: Shared, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.label = label
        self.shared = shared

    async def on_start(self) -> None:
        await super().on_start()
        self._started()

    async def on_stop(self) -> None:
        self._stopped()

    async def on_restart(self, exc: BaseException) -> None:
        await self._restarted()


class Watcher(trouper.Actor):
    def __init__(self) -> None:
        self.watched: dict[trouper.ActorRef, None] = {}
        self.terminated: collections.Counter[trouper.ActorRef] = collections.Counter()

    @trouper.handler
    async def watch(self, msg: Watch) -> None:
        self.watched[msg.ref] = None
        self.ctx.watch(msg.ref)

    @trouper.handler
    async def on_terminated(self, msg: trouper.Terminated) -> None:
        self.terminated[msg.ref] += 1

    @trouper.handler
    async def report(self, msg: Ping) -> tuple[list[trouper.ActorRef], dict[Any, int]]:
        return list(self.watched), dict(self.terminated)


# ------------------------------------------------------------ the generators


DEFAULT_BACKOFF = trouper.Backoff()


@attrs.frozen
class Spec:
    label: str
    restart: str
    kind: str = "worker"  # or a strategy name
    max_restarts: int = 3
    within: float = 5.0
    backoff: trouper.Backoff = DEFAULT_BACKOFF
    background: bool = False
    hang_stop: bool = False
    shutdown: float = 5.0
    children: tuple[Spec, ...] = ()

    def walk(self) -> list[Spec]:
        return [self, *(s for c in self.children for s in c.walk())]


STRATEGIES = {
    "one_for_one": trouper.OneForOne,
    "one_for_all": trouper.OneForAll,
    "rest_for_one": trouper.RestForOne,
}
RESTARTS = ("permanent", "permanent", "transient", "temporary")
backoffs = st.builds(
    trouper.Backoff,
    initial=st.sampled_from([0.0, 0.01, 0.2]),
    maximum=st.just(0.5),
    jitter=st.sampled_from([0.0, 0.1]),
)


def specs(labels: collections.abc.Iterator[str], depth: int) -> st.SearchStrategy[Spec]:
    worker = st.builds(
        lambda r, bg, hang, shutdown: Spec(
            next(labels), r, background=bg, hang_stop=hang, shutdown=shutdown
        ),
        st.sampled_from(RESTARTS),
        st.booleans(),
        st.sampled_from([False, False, False, True]),
        st.sampled_from([0.5, 2.0]),
    )
    if depth == 0:
        return worker

    @st.composite
    def supervisor(draw: st.DrawFn) -> Spec:
        label = next(labels)
        kids = draw(st.lists(specs(labels, depth - 1), min_size=1, max_size=3))
        return Spec(
            label,
            draw(st.sampled_from(RESTARTS)),
            kind=draw(st.sampled_from(sorted(STRATEGIES))),
            max_restarts=draw(st.integers(0, 3)),
            within=draw(st.sampled_from([1.0, 5.0])),
            backoff=draw(backoffs),
            shutdown=draw(st.sampled_from([1.0, 5.0])),
            children=tuple(kids),
        )

    return st.one_of(worker, supervisor())


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Spec], list[tuple[str, int, int, float]], Any]:
    counter = iter(f"n{i}" for i in range(1000))
    roots = draw(st.lists(specs(counter, 2), min_size=1, max_size=2))
    labels = [s.label for root in roots for s in root.walk()]
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["crash", "crash", "crash", "exit", "stop", "burst", "hang"]),
                st.integers(0, len(labels) - 1),
                st.integers(0, len(labels) - 1),
                st.sampled_from([0.0, 0.0, 0.005, 0.3, 3.0]),
            ),
            min_size=2,
            max_size=12,
        )
    )
    flaky = draw(st.dictionaries(st.sampled_from(labels), st.integers(1, 2), max_size=2))
    # /user's max_restarts: None is the default (3); 10**6 never gives up
    guardian = draw(st.sampled_from([None, 0, 1, 10**6]))
    return roots, [(op, i, j, gap) for op, i, j, gap in steps], (flaky, guardian)


# ----------------------------------------------------------------- the test


def child_spec(spec: Spec, shared: Shared) -> trouper.ChildSpec:
    if spec.kind == "worker":
        return trouper.child(
            Worker,
            spec.label,
            shared,
            spec.background,
            spec.hang_stop,
            name=spec.label,
            restart=spec.restart,
            shutdown=spec.shutdown,
        )
    strategy = STRATEGIES[spec.kind](
        max_restarts=spec.max_restarts, within=spec.within, backoff=spec.backoff
    )
    return trouper.child(
        Sup,
        spec.label,
        shared,
        name=spec.label,
        restart=spec.restart,
        shutdown=spec.shutdown,
        children=[child_spec(c, shared) for c in spec.children],
        strategy=strategy,
    )


OK_ASK_ERRORS = (Boom, trouper.ActorDead, trouper.AskTimeout)


async def ask(
    ref: trouper.ActorRef,
    msg: Any,
    outcomes: collections.Counter[str],
    timeout: float | None = 2.0,
) -> None:
    """Every ask ends: with a value, the crash, ActorDead or AskTimeout."""
    try:
        await ref.ask(msg, timeout=timeout)
    except OK_ASK_ERRORS as exc:
        outcomes[type(exc).__name__] += 1
    else:
        outcomes["ok"] += 1


async def settle(node: trouper.Node, shared: Shared) -> None:
    """Until no timer (backoff, ask deadline) is pending and no cell task runs
    but those blocked in a Hang handler. Hanging on_stops and stops waiting
    for them end within their shutdown times, so this ends (or fail_after
    reports a hang)."""
    while True:
        await trio.testing.wait_all_tasks_blocked()
        stats = node.stats()
        if stats.timers == 0 and stats.tasks == len(shared.hung):
            return
        await trio.sleep(1.0)  # virtual time: lets the pending timers fire


async def scenario(roots: list[Spec], steps: list[Any], extra: Any, seed: int) -> None:
    flaky, guardian = extra
    shared = Shared()
    shared.flaky = dict(flaky)
    labels = [s.label for root in roots for s in root.walk()]
    seen: dict[str, trouper.ActorRef] = {}
    outcomes: collections.Counter[str] = collections.Counter()
    hang_outcomes: collections.Counter[str] = collections.Counter()
    supervision = None if guardian is None else trouper.OneForOne(max_restarts=guardian)
    checked = False
    node: trouper.Node | None = None
    # Asks of Hang (no timeout) run beside the node: they must all have ended
    # once the node has exited, or this nursery never closes.
    async with trio.open_nursery() as hangs:
        try:
            # a generous node shutdown_timeout: cells are stopped (and killed
            # past their own shutdown) one by one, never cancelled wholesale
            async with trouper.open_node(
                seed=seed, supervision=supervision, shutdown_timeout=10_000
            ) as node:
                baseline = node.stats().actors  # guardians and system actors
                watcher = await node.spawn(Watcher, name="watcher")
                shared.watcher = watcher
                for root in roots:
                    await node.spawn(child_spec(root, shared))

                def target(index: int) -> trouper.ActorRef | None:
                    label = labels[index]
                    ref = node.registry.get(label)
                    if ref is not None:
                        seen[label] = ref
                        return ref
                    return seen.get(label)  # a stale ref: must answer ActorDead

                for op, i, j, gap in steps:
                    if gap:
                        await trio.sleep(gap)  # virtual time: spreads the crashes
                    ref = target(i)
                    if ref is None:
                        continue
                    if op == "crash":
                        await ask(ref, Crash(), outcomes)
                    elif op == "exit":
                        await ask(ref, Exit(), outcomes)
                    elif op == "stop":
                        await node.stop(ref)
                    elif op == "hang":
                        hangs.start_soon(ask, ref, Hang(), hang_outcomes, None)
                        await trio.testing.wait_all_tasks_blocked()
                    else:  # two crashes at once, without waiting in between
                        other = target(j) or ref
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(ask, ref, Crash(), outcomes)
                            nursery.start_soon(ask, other, Crash(), outcomes)

                await settle(node, shared)
                stats = node.stats()
                watched, terminated = await watcher.ask(Ping())
                assert set(terminated) <= set(watched)
                live = 0
                for ref in watched:
                    try:
                        instance = await ref.ask(Ping(), timeout=1.0)
                    except trouper.ActorDead:
                        assert terminated.get(ref) == 1, (ref, terminated)
                    except trouper.AskTimeout:
                        # alive but busy: hung, or under a hung supervisor
                        assert shared.hung, ref
                        assert ref not in terminated, (ref, terminated)
                        live += 1
                    else:
                        assert ref not in terminated, (ref, terminated)
                        assert shared.alive[ref.path] == instance
                        live += 1
                # the system actors + the watcher + the live tree
                assert stats.actors == baseline + 1 + live, (stats, baseline, live)
                checked = True
                event(f"node survived; restarts > 0: {stats.restarts > 0}")
        except BaseExceptionGroup as group:
            event("node failed (escalation past /user)")
            # Only an escalation past /user may end the node, and only as a
            # SupervisionError (after a graceful stop of the tree).
            assert guardian != 10**6
            flat = group.exceptions
            assert flat and all(isinstance(e, trouper.SupervisionError) for e in flat), group
            assert not checked
    assert node is not None
    stats = node.stats()
    assert (stats.actors, stats.tasks) == (0, 0), stats
    assert not shared.hung
    assert set(hang_outcomes) <= {"ActorDead"}, hang_outcomes
    for outcome in outcomes:
        event(f"an ask ended with {outcome}")
    if hang_outcomes:
        event("a hung handler was killed")


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="trouper")


@settings(
    max_examples=int(os.environ.get("TROUPER_SUPERVISION_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenarios(), st.integers(0, 2**16))
def test_random_trees_and_crash_schedules(
    case: tuple[list[Spec], list[Any], Any], seed: int
) -> None:
    roots, steps, extra = case

    async def main() -> None:
        with trio.fail_after(600):  # virtual seconds: a hang fails at once
            await scenario(roots, steps, extra, seed)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
