"""Supervision: OTP strategy semantics, intensity, backoff, restart types,
escalation and shutdown, all under trio's MockClock (autojump) where time matters."""

from __future__ import annotations

import itertools
import random
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

import trouper
from trouper import Backoff, OneForAll, OneForOne, RestartIntensity, RestForOne

# ------------------------------------------------------------------ fixtures


class Boom(Exception):
    pass


class Crash(msgspec.Struct):
    pass


class Exit(msgspec.Struct):
    pass


class Ping(msgspec.Struct):
    pass


class Note(msgspec.Struct):
    text: str


class Hang(msgspec.Struct):
    pass


class Fail(msgspec.Struct):
    text: str


class Watch(msgspec.Struct):
    ref: Any


Log = list[tuple[Any, ...]]

NO_JITTER = Backoff(initial=0.01, maximum=1.0, jitter=0.0)

#: instance serial numbers (``id()`` may be reused once an instance is freed)
SERIALS = itertools.count()


class Worker(trouper.Actor):
    """Records its life in ``log``: (event, label, ...)."""

    def __init__(self, label: str, log: Log, kids: tuple[str, ...] = ()) -> None:
        self.label = label
        self.log = log
        self.kids = kids
        self.serial = next(SERIALS)

    async def on_start(self) -> None:
        self.log.append(("start", self.label))
        for kid in self.kids:
            await self.ctx.spawn(trouper.child(Worker, kid, self.log, name=kid))

    async def on_stop(self) -> None:
        self.log.append(("stop", self.label))

    async def on_restart(self, exc: BaseException) -> None:
        self.log.append(("restart", self.label, exc))

    @trouper.handler
    async def crash(self, msg: Crash) -> None:
        self.log.append(("crash", self.label))
        raise Boom(self.label)

    @trouper.handler
    async def exit(self, msg: Exit) -> None:
        self.ctx.stop()

    @trouper.handler
    async def ping(self, msg: Ping) -> int:
        return self.serial

    @trouper.handler
    async def note(self, msg: Note) -> None:
        self.log.append(("note", self.label, msg.text))

    @trouper.handler
    async def hang(self, msg: Hang) -> None:
        await trio.sleep_forever()


class HangingStop(Worker):
    async def on_stop(self) -> None:
        self.log.append(("stop", self.label))
        await trio.sleep_forever()


class LoggingSupervisor(trouper.Supervisor):
    def __init__(self, label: str, log: Log, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.label = label
        self.log = log

    async def on_start(self) -> None:
        self.log.append(("start", self.label))
        await super().on_start()

    async def on_stop(self) -> None:
        self.log.append(("stop", self.label))


class Watcher(trouper.Actor):
    def __init__(self, seen: list[trouper.Terminated]) -> None:
        self.seen = seen

    @trouper.handler
    async def watch(self, msg: Watch) -> None:
        self.ctx.watch(msg.ref)

    @trouper.handler
    async def terminated(self, msg: trouper.Terminated) -> None:
        self.seen.append(msg)


def lifecycle(log: Log) -> list[tuple[str, str]]:
    """The start/stop/restart events only, without the exception."""
    return [(e[0], e[1]) for e in log if e[0] in ("start", "stop", "restart")]


async def crash(ref: trouper.ActorRef) -> Boom:
    with pytest.raises(Boom) as info:
        await ref.ask(Crash())
    return info.value


async def spawn_supervisor(
    node: trouper.Node, strategy: trouper.Strategy, log: Log, labels: str, **spec: Any
) -> list[trouper.ActorRef]:
    await node.spawn(
        trouper.Supervisor,
        children=[trouper.child(Worker, label, log, name=label, **spec) for label in labels],
        strategy=strategy,
    )
    return [await node.lookup(label) for label in labels]


# ---------------------------------------------------------- 1. strategies

STRATEGY_CASES = [
    (OneForOne, ["b"]),
    (OneForAll, ["a", "b", "c", "d"]),
    (RestForOne, ["b", "c", "d"]),
]


@pytest.mark.parametrize(("strategy_cls", "restarted"), STRATEGY_CASES)
async def test_strategy_restarts_exactly_the_otp_set(
    autojump_clock: trio.testing.MockClock,
    strategy_cls: type[trouper.Strategy],
    restarted: list[str],
) -> None:
    with trio.fail_after(30):
        log: Log = []
        backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.0)
        async with trouper.open_node(seed=1) as node:
            refs = await spawn_supervisor(node, strategy_cls(backoff=backoff), log, "abcd")
            before = {ref: await ref.ask(Ping()) for ref in refs}
            assert lifecycle(log) == [("start", x) for x in "abcd"]
            log.clear()

            async with node.dead_letters.subscribe() as letters:
                dead_before = node.dead_letters.count
                t0 = trio.current_time()
                exc = await crash(refs[1])
                # Let the supervisor tear down the affected children; the
                # restart itself waits for the (1 s) backoff timer.
                await trio.testing.wait_all_tasks_blocked()
                assert trio.current_time() == t0
                assert log[0] == ("crash", "b")
                assert lifecycle(log) == [("stop", x) for x in reversed(restarted)]
                # Sent while the children are down: they wait in the mailbox.
                for ref, label in zip(refs, "abcd", strict=True):
                    ref.tell_nowait(Note(f"during-{label}"))
                after = {ref: await ref.ask(Ping()) for ref in refs}
                assert trio.current_time() - t0 == pytest.approx(1.0)

                letter = letters.receive_nowait()
                assert isinstance(letter.message, Crash)
                assert letter.recipient == refs[1]
                assert letter.reason.startswith("failed: Boom")
                assert node.dead_letters.count == dead_before + 1

        # Teardown in reverse start order, then restart in start order; the
        # in-flight Crash was not retried.
        expected = [("stop", x) for x in reversed(restarted)]
        for x in restarted:
            expected += [("start", x), ("restart", x)]
        expected += [("stop", x) for x in "dcba"]  # node exit
        assert lifecycle(log) == expected
        assert [e for e in log if e[0] == "crash"] == [("crash", "b")]
        # Every restarted sibling got the original exception, the very object
        # the asker got.
        assert all(e[2] is exc for e in log if e[0] == "restart")
        # Same refs, fresh instances only where restarted.
        for ref, label in zip(refs, "abcd", strict=True):
            assert (before[ref] != after[ref]) == (label in restarted)
            # the note was handled (once), after the restart of that child
            notes = [i for i, e in enumerate(log) if e[:2] == ("note", label)]
            assert len(notes) == 1
            if label in restarted:
                assert notes[0] > log.index(("restart", label, exc))


async def test_restarted_children_keep_their_refs_and_names() -> None:
    with trio.fail_after(10):
        log: Log = []
        async with trouper.open_node(seed=2) as node:
            refs = await spawn_supervisor(node, OneForAll(backoff=NO_JITTER), log, "ab")
            await crash(refs[0])
            assert await refs[1].ask(Ping())
            assert [await node.lookup(x) for x in "ab"] == refs
            assert node.stats().restarts == 1


async def test_grandchildren_are_stopped_and_respawned_on_restart() -> None:
    with trio.fail_after(10):
        log: Log = []
        async with trouper.open_node(seed=3) as node:
            await node.spawn(
                trouper.Supervisor,
                children=[trouper.child(Worker, "p", log, kids=("p1", "p2"), name="p")],
                strategy=OneForOne(backoff=NO_JITTER),
            )
            p1_old = await node.lookup("p1")
            log.clear()
            p = await node.lookup("p")
            await crash(p)
            await p.ask(Ping())  # answered once p (and so its children) restarted
            p1 = await node.lookup("p1")
            # OTP: the failed child's own children are stopped (reverse order)
            # with it; the fresh instance starts fresh children.
            assert lifecycle(log) == [
                ("stop", "p2"),
                ("stop", "p1"),
                ("stop", "p"),
                ("start", "p"),
                ("start", "p1"),
                ("start", "p2"),
                ("restart", "p"),
            ]
            assert p1 != p1_old
            with pytest.raises(trouper.ActorDead):
                await p1_old.ask(Ping())


async def test_temporary_sibling_is_stopped_not_restarted_by_one_for_all() -> None:
    with trio.fail_after(10):
        log: Log = []
        async with trouper.open_node(seed=4) as node:
            await node.spawn(
                trouper.Supervisor,
                children=[
                    trouper.child(Worker, "a", log, name="a"),
                    trouper.child(Worker, "t", log, name="t", restart="temporary"),
                    trouper.child(Worker, "c", log, name="c", restart="transient"),
                ],
                strategy=OneForAll(backoff=NO_JITTER),
            )
            a, t, c = [await node.lookup(x) for x in "atc"]
            log.clear()
            await crash(a)
            await c.ask(Ping())
            assert lifecycle(log) == [
                ("stop", "c"),
                ("stop", "t"),
                ("stop", "a"),
                ("start", "a"),
                ("restart", "a"),
                ("start", "c"),
                ("restart", "c"),
            ]
            with pytest.raises(trouper.ActorDead):
                await t.ask(Ping())
            assert "t" not in node.registry


async def test_crash_in_background_task_restarts_the_actor() -> None:
    class Background(Worker):
        async def on_start(self) -> None:
            await super().on_start()
            if len([e for e in self.log if e[0] == "start"]) == 1:
                self.ctx.start_soon(self.fail)

        async def fail(self) -> None:
            raise Boom("background")

    with trio.fail_after(10):
        log: Log = []
        async with trouper.open_node(seed=5) as node:
            ref = await node.spawn(Background, "bg", log, restart="permanent")
            await ref.ask(Ping())
            await trio.testing.wait_all_tasks_blocked()
            await ref.ask(Ping())
            assert lifecycle(log) == [
                ("start", "bg"),
                ("stop", "bg"),
                ("start", "bg"),
                ("restart", "bg"),
            ]
            assert str(log[-1][2]) == "background"


async def test_failing_on_restart_counts_as_a_crash_and_is_retried() -> None:
    class FlakyRestart(Worker):
        budget = [2]

        async def on_restart(self, exc: BaseException) -> None:
            await super().on_restart(exc)
            if self.budget[0] > 0:
                self.budget[0] -= 1
                raise Boom("on_restart")

    with trio.fail_after(10):
        log: Log = []
        async with trouper.open_node(seed=6) as node:
            await node.spawn(
                trouper.Supervisor,
                children=[trouper.child(FlakyRestart, "f", log, name="f")],
                strategy=OneForOne(max_restarts=3, backoff=NO_JITTER),
            )
            ref = await node.lookup("f")
            await crash(ref)
            await ref.ask(Ping())
            assert lifecycle(log).count(("restart", "f")) == 3
            assert node.stats().restarts == 3


# ------------------------------------------------------------- 2. intensity


class Decisions:
    """A decider that records what reached it and stops the failed child."""

    def __init__(self) -> None:
        self.seen: list[BaseException] = []

    def __call__(self, exc: BaseException) -> trouper.supervisors._strategy.Directive:
        self.seen.append(exc)
        return "stop" if isinstance(exc, trouper.SupervisionError) else "restart"


async def spawn_observed(
    node: trouper.Node, log: Log, strategy: trouper.Strategy
) -> tuple[Decisions, trouper.ActorRef, trouper.ActorRef]:
    """/user/top (decider records) -> sup (``strategy``) -> worker "w"."""
    decisions = Decisions()
    top = await node.spawn(
        trouper.Supervisor,
        children=[
            trouper.child(
                LoggingSupervisor,
                "sup",
                log,
                name="sup",
                children=[trouper.child(Worker, "w", log, name="w")],
                strategy=strategy,
            )
        ],
        strategy=OneForOne(decider=decisions),
    )
    return decisions, top, await node.lookup("w")


async def test_intensity_window_slides(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(100):
        log: Log = []
        async with trouper.open_node(seed=7) as node:
            strategy = OneForOne(max_restarts=3, within=5.0, backoff=NO_JITTER)
            decisions, _, w = await spawn_observed(node, log, strategy)
            sup = await node.lookup("sup")
            # 8 crashes 2 s apart: never more than 3 in any 5 s window.
            for _ in range(8):
                await crash(w)
                await w.ask(Ping())
                await trio.sleep(2.0)  # virtual time: spaces the crashes out
            assert node.stats().restarts == 8
            assert decisions.seen == []
            assert await node.lookup("sup") == sup


async def test_intensity_exceeded_fails_the_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        log: Log = []
        seen: list[trouper.Terminated] = []
        async with trouper.open_node(seed=8) as node:
            watcher = await node.spawn(Watcher, seen)
            strategy = OneForOne(max_restarts=3, within=5.0, backoff=NO_JITTER)
            decisions, _, w = await spawn_observed(node, log, strategy)
            sup = await node.lookup("sup")
            await watcher.ask(Watch(sup))
            booms = []
            for _ in range(3):
                booms.append(await crash(w))
                await w.ask(Ping())
                await trio.sleep(1.0)
            assert decisions.seen == []
            booms.append(await crash(w))  # the 4th within 5 s
            with pytest.raises(trouper.ActorDead):
                await w.ask(Ping())  # torn down with its failed supervisor
            await trio.testing.wait_all_tasks_blocked()
            [error] = decisions.seen
            assert isinstance(error, trouper.SupervisionError)
            assert error.__cause__ is booms[-1]
            assert [t.ref for t in seen] == [sup]
            assert seen[0].reason.startswith("error: SupervisionError")
            assert lifecycle(log)[-2:] == [("stop", "w"), ("stop", "sup")]


async def test_decider_stop_and_escalate() -> None:
    class Fatal(Exception):
        pass

    def decider(exc: BaseException) -> trouper.supervisors._strategy.Directive:
        return "escalate" if isinstance(exc, Fatal) else "stop"

    class Raiser(Worker):
        @trouper.handler
        async def raise_(self, msg: Fail) -> None:
            raise Fatal(msg.text)

    with trio.fail_after(10):
        log: Log = []
        decisions = Decisions()
        async with trouper.open_node(seed=9) as node:
            await node.spawn(
                trouper.Supervisor,
                children=[
                    trouper.child(
                        trouper.Supervisor,
                        name="mid",
                        children=[
                            trouper.child(Worker, "s", log, name="s"),
                            trouper.child(Raiser, "e", log, name="e"),
                        ],
                        strategy=OneForOne(decider=decider),
                    )
                ],
                strategy=OneForOne(decider=decisions, backoff=NO_JITTER),
            )
            await crash(await node.lookup("s"))  # "stop": not restarted
            await trio.testing.wait_all_tasks_blocked()
            assert "s" not in node.registry
            mid = await node.lookup("mid")
            with pytest.raises(Fatal):
                await (await node.lookup("e")).ask(Fail("x"))
            # "escalate": mid fails with the child's own exception, and is
            # restarted by its parent (fresh children, both of them).
            await node.lookup("s", timeout=5)  # waits until mid has restarted
            await node.lookup("e", timeout=5)
            [exc] = decisions.seen
            assert isinstance(exc, Fatal)
            assert await node.lookup("mid") == mid


# --------------------------------------------------------------- 3. backoff


class Stamp(trouper.Actor):
    def __init__(self, starts: list[float], crashes: list[float]) -> None:
        self.starts = starts
        self.crashes = crashes

    async def on_start(self) -> None:
        self.starts.append(trio.current_time())

    @trouper.handler
    async def crash(self, msg: Crash) -> None:
        self.crashes.append(trio.current_time())
        raise Boom()

    @trouper.handler
    async def ping(self, msg: Ping) -> None:
        pass


async def measure_delays(backoff: Backoff, crashes: int, seed: int) -> list[float]:
    starts: list[float] = []
    times: list[float] = []
    async with trouper.open_node(seed=seed) as node:
        strategy = OneForOne(max_restarts=100, within=1000.0, backoff=backoff)
        await node.spawn(
            trouper.Supervisor,
            children=[trouper.child(Stamp, starts, times, name="stamp")],
            strategy=strategy,
        )
        ref = await node.lookup("stamp")
        for _ in range(crashes):
            await crash(ref)
            await ref.ask(Ping(), timeout=None)
    return [start - crash for start, crash in zip(starts[1:], times, strict=True)]


async def test_backoff_schedule_under_mock_clock(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(100):
        backoff = Backoff(initial=0.1, maximum=0.5, jitter=0.0)
        delays = await measure_delays(backoff, 6, seed=10)
        assert delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5, 0.5])


async def test_backoff_resets_when_the_window_slides(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        starts: list[float] = []
        times: list[float] = []
        async with trouper.open_node(seed=11) as node:
            strategy = OneForOne(
                max_restarts=5, within=10.0, backoff=Backoff(initial=1.0, maximum=8.0, jitter=0)
            )
            await node.spawn(
                trouper.Supervisor,
                children=[trouper.child(Stamp, starts, times, name="stamp")],
                strategy=strategy,
            )
            ref = await node.lookup("stamp")
            for gap in (0.0, 0.0, 20.0):
                await trio.sleep(gap)  # virtual time: lets the window empty
                await crash(ref)
                await ref.ask(Ping(), timeout=None)
        delays = [s - c for s, c in zip(starts[1:], times, strict=True)]
        assert delays == pytest.approx([1.0, 2.0, 1.0])


async def test_backoff_jitter_is_seeded(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(100):
        backoff = Backoff(initial=0.1, maximum=10.0, jitter=0.5)
        first = await measure_delays(backoff, 4, seed=12)
        again = await measure_delays(backoff, 4, seed=12)
        other = await measure_delays(backoff, 4, seed=13)
        assert first == pytest.approx(again)
        assert first != pytest.approx(other)
        for attempt, delay in enumerate(first):
            base = 0.1 * 2**attempt
            assert 0.5 * base - 1e-9 <= delay <= 1.5 * base + 1e-9


def test_backoff_delay_is_exponential_and_capped() -> None:
    rng = random.Random(0)
    backoff = Backoff(initial=0.01, maximum=1.0, jitter=0.0)
    assert [backoff.delay(n, rng) for n in range(9)] == pytest.approx(
        [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0]
    )
    assert backoff.delay(-3, rng) == pytest.approx(0.01)
    assert Backoff(initial=0.5, maximum=4.0, multiplier=3.0, jitter=0).delay(2, rng) == 4.0
    assert trouper.supervisors._strategy.NO_BACKOFF.delay(5, rng) == 0.0


def test_backoff_jitter_bounds_and_determinism() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, jitter=0.1)
    a = [backoff.delay(n, random.Random(42)) for n in range(10)]
    b = [backoff.delay(n, random.Random(42)) for n in range(10)]
    assert a == b
    rng = random.Random(1)
    for n in range(10):
        for _ in range(50):
            base = min(1.0, 0.1 * 2**n)
            assert 0.9 * base - 1e-12 <= backoff.delay(n, rng) <= min(1.0, 1.1 * base) + 1e-12


@pytest.mark.parametrize(
    "kwargs", [{"initial": -1.0}, {"maximum": -1.0}, {"jitter": 1.5}, {"jitter": -0.1}]
)
def test_backoff_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(trouper.ConfigurationError):
        Backoff(**kwargs)


def test_restart_intensity_sliding_window() -> None:
    intensity = RestartIntensity(max_restarts=3, within=5.0)
    assert [intensity.record(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert intensity.recent == 3
    assert intensity.record(4.9) is False  # 4 restarts within 5 s
    fresh = RestartIntensity(3, 5.0)
    for t in (0.0, 1.0, 2.0):
        fresh.record(t)
    # exactly ``within`` later the first restart has aged out
    assert fresh.record(5.0) is True
    assert fresh.recent == 3
    assert fresh.record(100.0) is True
    assert fresh.recent == 1


def test_restart_intensity_zero_and_ageing() -> None:
    assert RestartIntensity(0, 1.0).record(0.0) is False
    intensity = RestartIntensity(1, 1.0)
    assert [intensity.record(t) for t in (0.0, 0.5, 1.0, 1.5, 2.6)] == [
        True,
        False,
        False,
        False,
        True,
    ]


def test_strategy_affected_and_validation() -> None:
    kids = ["a", "b", "c", "d"]
    assert OneForOne().affected(kids, "c") == ["c"]
    assert OneForAll().affected(kids, "c") == kids
    assert RestForOne().affected(kids, "b") == ["b", "c", "d"]
    assert RestForOne().affected(kids, "d") == ["d"]
    with pytest.raises(trouper.ConfigurationError):
        OneForOne(max_restarts=-1)
    with pytest.raises(trouper.ConfigurationError):
        OneForAll(within=0)
    with pytest.raises(trouper.ConfigurationError):
        trouper.child(Worker, restart="sometimes")  # type: ignore[arg-type]
    with pytest.raises(trouper.ConfigurationError):
        trouper.child(Worker, shutdown=-1)
    spec = trouper.child(Worker, "x", [], name="x", kids=())
    assert (spec.restart, spec.shutdown, spec.args, spec.kwargs) == (
        "permanent",
        5.0,
        ("x", []),
        {"kids": ()},
    )


# ---------------------------------------------------------- 4. restart types


@pytest.mark.parametrize("restart", ["permanent", "transient", "temporary"])
@pytest.mark.parametrize("how", ["exit", "crash", "external"])
async def test_restart_types(restart: str, how: str) -> None:
    with trio.fail_after(10):
        log: Log = []
        seen: list[trouper.Terminated] = []
        async with trouper.open_node(seed=14) as node:
            watcher = await node.spawn(Watcher, seen)
            await node.spawn(
                trouper.Supervisor,
                children=[trouper.child(Worker, "w", log, name="w", restart=restart)],
                strategy=OneForOne(backoff=NO_JITTER),
            )
            ref = await node.lookup("w")
            await watcher.ask(Watch(ref))
            if how == "exit":
                await ref.ask(Exit())
            elif how == "crash":
                await crash(ref)
            else:
                await node.stop(ref)
            restarted = (restart == "permanent" and how != "external") or (
                restart == "transient" and how == "crash"
            )
            if restarted:
                await ref.ask(Ping())
                assert node.stats().restarts == 1
                assert seen == []
            else:
                with pytest.raises(trouper.ActorDead):
                    await ref.ask(Ping())
                await trio.testing.wait_all_tasks_blocked()
                assert node.stats().restarts == 0
                [terminated] = seen
                assert terminated.ref == ref
                expected = "error: Boom" if how == "crash" else "normal"
                assert terminated.reason.startswith(expected)
            events = lifecycle(log)
            assert events[:2] == [("start", "w"), ("stop", "w")]
            if restarted:
                # on_restart only after a failure (a normal exit has no cause)
                tail = [("start", "w")] + ([("restart", "w")] if how == "crash" else [])
                assert events[2:] == tail
            else:
                assert events[2:] == []


async def test_spawn_defaults_to_transient_and_child_to_permanent() -> None:
    with trio.fail_after(10):
        log: Log = []
        async with trouper.open_node(seed=15) as node:
            top = await node.spawn(Worker, "top", log)
            await crash(top)
            await top.ask(Ping())  # restarted by /user after a crash
            await top.ask(Exit())
            with pytest.raises(trouper.ActorDead):
                await top.ask(Ping())  # a normal exit of a transient actor
            assert trouper.child(Worker).restart == "permanent"


# --------------------------------------------------------- 5. escalation


async def test_nested_escalation_reaches_the_node(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(100):
        log: Log = []
        mids: list[trouper.ActorRef] = []
        grandchildren: list[trouper.ActorRef] = []
        booms: list[Boom] = []
        node_ref: list[trouper.Node] = []
        fast = Backoff(initial=0.01, maximum=0.01, jitter=0.0)
        with pytest.raises(BaseExceptionGroup) as info:
            async with trouper.open_node(
                seed=16, supervision=OneForOne(max_restarts=0, backoff=fast)
            ) as node:
                node_ref.append(node)
                await node.spawn(
                    LoggingSupervisor,
                    "top",
                    log,
                    name="top",
                    children=[
                        trouper.child(
                            LoggingSupervisor,
                            "mid",
                            log,
                            name="mid",
                            children=[trouper.child(Worker, "gc", log, name="gc")],
                            strategy=OneForOne(max_restarts=2, within=10.0, backoff=fast),
                        )
                    ],
                    strategy=OneForOne(max_restarts=1, within=10.0, backoff=fast),
                )
                while True:  # ends when the node fails and cancels this body
                    mid = await node.lookup("mid", timeout=1)
                    gc = await node.lookup("gc", timeout=1)
                    if mid not in mids:
                        mids.append(mid)
                    if gc not in grandchildren:
                        grandchildren.append(gc)
                    await gc.ask(Ping())
                    booms.append(await crash(gc))
                    # the supervisors have handled the failure (a failed mid
                    # is torn down, gc with it) before we look gc up again
                    await trio.testing.wait_all_tasks_blocked()

        [error] = info.value.exceptions
        assert isinstance(error, trouper.SupervisionError)
        assert "/user" in str(error)
        # /user gave up on top, top gave up on mid, mid gave up on gc.
        chain = [error.__cause__, error.__cause__.__cause__]
        assert all(isinstance(e, trouper.SupervisionError) for e in chain)
        assert "/user/top:" in str(chain[0]) and "/user/top/mid:" in str(chain[1])
        assert chain[1].__cause__ is booms[-1]
        # mid was restarted once (same ref: its cell is kept), with fresh
        # grandchildren: two incarnations of gc (different refs).
        assert len(mids) == 1 and len(grandchildren) == 2
        assert len(booms) == 6
        events = lifecycle(log)
        assert events.count(("start", "mid")) == 2
        assert events.count(("start", "gc")) == 2 + 2 + 2
        # ...and the tree was stopped gracefully: the last incarnations ran on_stop.
        assert events[-3:] == [("stop", "gc"), ("stop", "mid"), ("stop", "top")]
        node = node_ref[0]
        assert node.stats().actors == 0 and node.stats().tasks == 0


# ---------------------------------------------------------- 6. shutdown


async def test_node_exit_stops_in_reverse_start_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        log: Log = []
        async with trouper.open_node(seed=17) as node:
            await node.spawn(Worker, "first", log, kids=("f1", "f2"))
            await node.spawn(
                LoggingSupervisor,
                "sup",
                log,
                children=[
                    trouper.child(Worker, "a", log, kids=("a1", "a2")),
                    trouper.child(Worker, "b", log),
                    trouper.child(Worker, "c", log),
                ],
            )
            started = lifecycle(log)
            assert started == [
                ("start", "first"),
                ("start", "f1"),
                ("start", "f2"),
                ("start", "sup"),
                ("start", "a"),
                ("start", "a1"),
                ("start", "a2"),
                ("start", "b"),
                ("start", "c"),
            ]
            log.clear()
        assert lifecycle(log) == [
            ("stop", "c"),
            ("stop", "b"),
            ("stop", "a2"),
            ("stop", "a1"),
            ("stop", "a"),
            ("stop", "sup"),
            ("stop", "f2"),
            ("stop", "f1"),
            ("stop", "first"),
        ]
        assert node.stats().actors == 0 and node.stats().tasks == 0


async def test_hanging_on_stop_is_killed_after_shutdown_at_node_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        log: Log = []
        async with trouper.open_node(seed=18) as node:
            await node.spawn(
                trouper.Supervisor,
                children=[
                    trouper.child(Worker, "a", log),
                    trouper.child(HangingStop, "h", log, shutdown=2.0),
                    trouper.child(Worker, "c", log),
                ],
            )
            log.clear()
            t0 = trio.current_time()
        assert trio.current_time() - t0 == pytest.approx(2.0)
        assert lifecycle(log) == [("stop", "c"), ("stop", "h"), ("stop", "a")]
        assert node.stats().actors == 0 and node.stats().tasks == 0


async def test_explicit_stop_kills_a_hanging_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        log: Log = []
        seen: list[trouper.Terminated] = []
        async with trouper.open_node(seed=19) as node:
            baseline = node.stats().actors  # guardians and system actors
            watcher = await node.spawn(Watcher, seen)
            ref = await node.spawn(HangingStop, "h", log, kids=("k",), shutdown=3.0)
            await watcher.ask(Watch(ref))
            t0 = trio.current_time()
            await node.stop(ref)
            assert trio.current_time() - t0 == pytest.approx(3.0)
            await trio.testing.wait_all_tasks_blocked()
            assert [(t.ref, t.reason) for t in seen] == [(ref, "killed")]
            assert lifecycle(log)[-2:] == [("stop", "k"), ("stop", "h")]
            assert node.stats().actors == baseline + 1  # the watcher is left


async def test_hanging_teardown_during_restart_is_killed_and_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """OneForAll: a sibling whose on_stop hangs is killed after its shutdown
    time, then restarted with the others (the supervisor is not wedged)."""
    with trio.fail_after(100):
        log: Log = []
        async with trouper.open_node(seed=20) as node:
            await node.spawn(
                trouper.Supervisor,
                children=[
                    trouper.child(Worker, "a", log, name="a"),
                    trouper.child(HangingStop, "h", log, name="h", shutdown=2.0),
                    trouper.child(Worker, "c", log, name="c"),
                ],
                strategy=OneForAll(backoff=Backoff(initial=0.5, maximum=0.5, jitter=0)),
            )
            h, c = [await node.lookup(x) for x in "hc"]
            log.clear()
            t0 = trio.current_time()
            await crash(c)
            await c.ask(Ping())
            assert trio.current_time() - t0 == pytest.approx(2.5)
            assert await h.ask(Ping())
            assert lifecycle(log) == [
                ("stop", "c"),
                ("stop", "h"),
                ("stop", "a"),
                ("start", "a"),
                ("restart", "a"),
                ("start", "h"),
                ("restart", "h"),
                ("start", "c"),
                ("restart", "c"),
            ]
            log.clear()
        assert lifecycle(log) == [("stop", "c"), ("stop", "h"), ("stop", "a")]


async def test_sibling_stuck_in_a_handler_is_killed_and_its_asker_released(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        log: Log = []
        async with trouper.open_node(seed=21) as node:
            await node.spawn(
                trouper.Supervisor,
                children=[
                    trouper.child(Worker, "a", log, name="a"),
                    trouper.child(Worker, "b", log, name="b", shutdown=1.0),
                ],
                strategy=OneForAll(backoff=NO_JITTER),
            )
            a, b = [await node.lookup(x) for x in "ab"]
            outcome: list[BaseException] = []

            async def stuck_ask() -> None:
                try:
                    await b.ask(Hang(), timeout=None)
                except trouper.ActorDead as exc:
                    outcome.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(stuck_ask)
                await trio.testing.wait_all_tasks_blocked()
                await crash(a)
            assert len(outcome) == 1
            await b.ask(Ping())
            # b was killed in its handler: no on_stop for it (brutal kill)
            assert lifecycle(log)[:4] == [
                ("start", "a"),
                ("start", "b"),
                ("stop", "a"),
                ("start", "a"),
            ]


async def test_stats_settle_after_restarts() -> None:
    with trio.fail_after(10):
        log: Log = []
        async with trouper.open_node(seed=22) as node:
            baseline = node.stats().actors  # guardians and system actors
            refs = await spawn_supervisor(node, RestForOne(backoff=NO_JITTER), log, "abc")
            await crash(refs[0])
            await refs[2].ask(Ping())
            await trio.testing.wait_all_tasks_blocked()
            stats = node.stats()
            assert stats.tasks == 0
            assert stats.actors == baseline + 1 + 3
            assert stats.restarts == 1


@pytest.mark.parametrize("teardown_first", [False, True])
async def test_explicit_stop_racing_a_restart_wins(
    autojump_clock: trio.testing.MockClock, teardown_first: bool
) -> None:
    """node.stop(ref) while the supervisor tears the same (crashed) child
    down for a restart, both blocked on a hanging on_stop: the stop wins, the
    actor is not restarted, node.stop returns after the shutdown time."""
    with trio.fail_after(100):
        log: Log = []
        seen: list[trouper.Terminated] = []
        async with trouper.open_node(seed=23) as node:
            watcher = await node.spawn(Watcher, seen)
            await node.spawn(
                trouper.Supervisor,
                children=[trouper.child(HangingStop, "h", log, name="h", shutdown=0.5)],
                strategy=OneForOne(backoff=NO_JITTER),
            )
            ref = await node.lookup("h")
            await watcher.ask(Watch(ref))
            t0 = trio.current_time()
            await crash(ref)
            if teardown_first:
                await trio.testing.wait_all_tasks_blocked()  # on_stop now hangs
            await node.stop(ref)
            assert trio.current_time() - t0 == pytest.approx(0.5)
            with pytest.raises(trouper.ActorDead):
                await ref.ask(Ping())
            await trio.sleep(1.0)  # virtual time: a restart timer would fire
            await trio.testing.wait_all_tasks_blocked()
            assert lifecycle(log) == [("start", "h"), ("stop", "h")]
            assert [(t.ref, t.reason) for t in seen] == [(ref, "killed")]
            assert "h" not in node.registry


class SlowStop(Worker):
    """on_stop ends exactly at its shutdown deadline (1 s): the supervisor's
    kill and the end of the teardown then race at the same instant."""

    async def on_stop(self) -> None:
        await trio.sleep(1.0)
        self.log.append(("stop", self.label))


@pytest.mark.parametrize("initial", [0.0, 0.01])
async def test_teardown_ending_as_its_deadline_expires_still_restarts(
    autojump_clock: trio.testing.MockClock, initial: float
) -> None:
    with trio.fail_after(100):
        log: Log = []
        async with trouper.open_node(seed=24) as node:
            await node.spawn(
                trouper.Supervisor,
                children=[trouper.child(SlowStop, "s", log, name="s", shutdown=1.0)],
                strategy=OneForOne(backoff=Backoff(initial=initial, maximum=1.0, jitter=0)),
            )
            ref = await node.lookup("s")
            for _ in range(3):
                await crash(ref)
                # answered by the restarted instance (a lost restart would
                # leave the ask waiting in the mailbox until its timeout)
                await ref.ask(Ping(), timeout=3.0)
            assert lifecycle(log).count(("restart", "s")) == 3
