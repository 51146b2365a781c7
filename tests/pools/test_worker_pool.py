"""Worker pools on a real node: each routing, supervision, status, stopping."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import msgspec
import pytest
import trio
import trio.testing

import trouper
from trouper.pools import pool_status


@trouper.message
class Job(msgspec.Struct):
    user: str = ""
    n: int = 0


class Hold(msgspec.Struct):
    """Block the worker that gets it until the event is set."""

    event: trio.Event


class Crash(msgspec.Struct):
    pass


class Worker(trouper.Actor):
    """Answers with its own path; records what it handled."""

    def __init__(self, seen: list[tuple[str, object]] | None = None) -> None:
        self.seen = seen if seen is not None else []

    @trouper.handler
    async def job(self, msg: Job) -> str:
        self.seen.append((self.ctx.self_ref.path, msg))
        return self.ctx.self_ref.path

    @trouper.handler
    async def hold(self, msg: Hold) -> str:
        await msg.event.wait()
        return self.ctx.self_ref.path

    @trouper.handler
    async def crash(self, msg: Crash) -> None:
        raise ValueError("worker crashed on purpose")

    @trouper.handler
    async def restarts(self, msg: str) -> int:
        return self.ctx.node.kernel.restarts

    @trouper.handler
    async def me(self, msg: bytes) -> trouper.ActorRef:
        return self.ctx.self_ref

    @trouper.handler
    async def count(self, msg: int) -> AsyncIterator[str]:
        for i in range(msg):
            yield f"{i} from {self.ctx.self_ref.path}"


async def test_round_robin_takes_each_worker_in_turn() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Worker, min=3, max=3)
            paths = [await pool.ask(Job(n=i)) for i in range(6)]
            assert len(set(paths)) == 3
            assert paths[:3] == paths[3:]


async def test_tells_route_too_and_keep_the_sender() -> None:
    seen: list[tuple[str, object]] = []
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Worker, seen, min=2, max=2)
            for i in range(4):
                await pool.tell(Job(n=i))
            await pool.ask(Job(n=99))  # behind the tells on its worker
            while len(seen) < 5:
                await trio.testing.wait_all_tasks_blocked()
            counts = Counter(path for path, _ in seen)
            assert len(counts) == 2 and sum(counts.values()) == 5


async def _sequence(seed: int) -> list[int]:
    async with trouper.open_node(seed=seed) as node:
        pool = await node.spawn_pool(Worker, min=4, max=4, routing="random")
        status = await pool_status(pool)
        assert status.size == 4
        order: dict[str, int] = {}
        out = []
        for i in range(40):
            path = await pool.ask(Job(n=i))
            out.append(order.setdefault(path, len(order)))
        return out


async def test_random_routing_is_seeded_by_the_node() -> None:
    with trio.fail_after(10):
        first = await _sequence(7)
        assert first == await _sequence(7)
        assert len(set(first)) == 4  # every worker drawn in 40 tries
        assert first != sorted(first) and first != [i % 4 for i in range(40)]


@pytest.mark.parametrize("routing", ["least-loaded", "round-robin"])
async def test_least_loaded_avoids_the_busy_worker(routing: str) -> None:
    """With room for 4 messages a worker, round-robin still hands the busy
    worker its turn (those asks wait behind the held one); least-loaded does not."""
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Worker, min=2, max=2, prefetch=4, routing=routing)
            release = trio.Event()
            async with trio.open_nursery() as nursery:
                held: list[str] = []
                paths: list[str] = []

                async def ask(msg: object, out: list[str]) -> None:
                    out.append(await pool.ask(msg))

                nursery.start_soon(ask, Hold(release), held)
                await trio.testing.wait_all_tasks_blocked()
                for i in range(4):  # one at a time: each is answered, or stuck
                    nursery.start_soon(ask, Job(n=i), paths)
                    await trio.testing.wait_all_tasks_blocked()
                answered_while_held = len(paths)
                release.set()
            if routing == "least-loaded":
                assert answered_while_held == 4 and held[0] not in paths
            else:
                assert answered_while_held == 2 and held[0] in paths


async def test_consistent_hash_is_sticky_per_key() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            by_fn = await node.spawn_pool(
                Worker, min=4, max=4, routing=trouper.ConsistentHash(key=lambda m: m.user)
            )
            by_field = await node.spawn_pool(
                Worker, min=4, max=4, routing=trouper.ConsistentHash(key="user")
            )
            for pool in (by_fn, by_field):
                owners: dict[str, set[str]] = {}
                for i in range(60):
                    user = f"user-{i % 12}"
                    owners.setdefault(user, set()).add(await pool.ask(Job(user=user, n=i)))
                assert all(len(paths) == 1 for paths in owners.values())
                assert len({p for paths in owners.values() for p in paths}) > 1


async def test_a_message_without_the_hash_key_fails_alone() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(
                Worker, min=2, max=2, routing=trouper.ConsistentHash(key="usr")
            )
            with pytest.raises(trouper.ConfigurationError, match=r"no field 'usr'.*'user'"):
                await pool.ask(Job(user="ada"))
            with pytest.raises(trouper.ConfigurationError, match="no field 'usr'"):
                await pool.ask("restarts")
            assert (await pool_status(pool)).size == 2  # the pool carries on


async def test_broadcast_tells_every_worker_and_gathers_asks() -> None:
    seen: list[tuple[str, object]] = []
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Worker, seen, min=3, max=3, routing="broadcast")
            await pool.tell(Job(n=1))
            answers = await pool.ask(Job(n=2))
            assert len(answers) == 3 and len(set(answers)) == 3
            assert Counter(msg.n for _, msg in seen) == {1: 3, 2: 3}  # type: ignore[attr-defined]
            with pytest.raises(ValueError, match="on purpose"):
                await pool.ask(Crash())


async def test_a_crashed_worker_is_restarted_in_place() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Worker, min=2, max=2)
            before = {await pool.ask(Job(n=i)) for i in range(2)}
            # The in-flight ask fails with the worker's error (the usual rule).
            with pytest.raises(ValueError, match="on purpose"):
                await pool.ask(Crash())
            await pool.tell(Crash())  # a told one is a dead letter
            after = {await pool.ask(Job(n=i)) for i in range(4)}
            assert after == before  # same workers, same refs
            assert await pool.ask("restarts") == 2
            status = await pool_status(pool)
            assert (status.size, status.active) == (2, 0)


async def test_status_counts_busy_workers_and_waiters() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Worker, min=2, max=2, name="jobs")
            release = trio.Event()
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(pool.ask, Hold(release))
                await trio.testing.wait_all_tasks_blocked()
                status = await pool_status(pool)
                assert status == trouper.PoolStatus(
                    name="jobs",
                    size=2,
                    active=2,
                    idle=0,
                    waiters=1,
                    utilisation=1.0,
                    expansions=0,
                    shrinks=0,
                    min=2,
                    max=2,
                )
                release.set()
            status = await pool_status(pool)
            assert (status.active, status.idle, status.waiters) == (0, 2, 0)


class Noting(trouper.Actor):
    def __init__(self, out: trio.MemorySendChannel[str]) -> None:
        self.out = out

    async def on_stop(self) -> None:
        self.out.send_nowait(self.ctx.self_ref.path)

    @trouper.handler
    async def job(self, msg: Job) -> str:
        return self.ctx.self_ref.path


async def test_stopping_the_pool_stops_its_workers() -> None:
    send, recv = trio.open_memory_channel[str](10)
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Noting, send, min=3, max=3)
            paths = {await pool.ask(Job(n=i)) for i in range(3)}
            await node.stop(pool)
            stopped = {recv.receive_nowait() for _ in range(3)}
            assert stopped == paths
            with pytest.raises(trouper.ActorDead):
                await pool.ask(Job())


class Owner(trouper.Actor):
    @trouper.handler
    async def make(self, msg: int) -> trouper.ActorRef:
        return await self.ctx.spawn_pool(Worker, min=msg, max=msg)


async def test_an_actor_spawns_a_pool_as_its_child() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            owner = await node.spawn(Owner)
            pool = await owner.ask(2)
            assert pool.path.startswith(owner.path + "/")
            assert len({await pool.ask(Job(n=i)) for i in range(4)}) == 2


async def test_the_routers_mailbox_is_bounded() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(
                Worker, min=1, max=1, mailbox_size=2, max_queued=2, worker_mailbox_size=1
            )
            release = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pool.ask, Hold(release))
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(trouper.MailboxFull):
                    for i in range(10):
                        pool.tell_nowait(Job(n=i))
                        await trio.testing.wait_all_tasks_blocked()
                release.set()
            assert await pool.ask(Job(n=100))  # and it drains afterwards


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"min": 0}, "min >= 1"),
        ({"routing": "round-robbin"}, "did you mean 'round-robin'"),
        ({"routing": 3}, "routing must be one of"),
        ({"min": 5, "max": 2}, "min <= max"),
        ({"policy": trouper.PoolPolicy(min=1, max=4), "max": 8}, "given twice"),
        ({"policy": "fast"}, "must be a trouper.PoolPolicy"),
        ({"supervision": "one-for-one"}, "must be a Strategy"),
        ({"prefetch": 0}, "prefetch must be an int >= 1"),
        ({"max_queued": 1.5}, "max_queued must be an int"),
    ],
)
async def test_bad_options_are_refused_by_name(options: dict[str, object], match: str) -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            with pytest.raises(trouper.ConfigurationError, match=match):
                await node.spawn_pool(Worker, **options)
            with pytest.raises(trouper.ConfigurationError, match="Actor subclass"):
                await node.spawn_pool(int)  # type: ignore[arg-type]


async def test_a_worker_stopped_from_outside_is_replaced() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Worker, min=2, max=2)
            first = {await pool.ask(b"me") for _ in range(2)}
            assert len(first) == 2
            gone = sorted(first)[0]
            await node.stop(gone)
            while True:  # the pool learns of it by a watch, then starts another
                now = {await pool.ask(b"me") for _ in range(2)}
                if gone not in now and len(now) == 2:
                    break
                await trio.testing.wait_all_tasks_blocked()
            assert len(now & first) == 1
            assert (await pool_status(pool)).size == 2


async def test_asks_waiting_in_the_router_fail_when_the_pool_stops() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Worker, min=1, max=1)
            release = trio.Event()
            failures: list[BaseException] = []

            async def ask(msg: object) -> None:
                try:
                    await pool.ask(msg)
                except trouper.ActorDead as exc:
                    failures.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, Hold(release))
                await trio.testing.wait_all_tasks_blocked()
                for i in range(3):
                    nursery.start_soon(ask, Job(n=i))
                await trio.testing.wait_all_tasks_blocked()
                assert (await pool_status(pool)).waiters == 3
                nursery.start_soon(node.stop, pool)
                await trio.testing.wait_all_tasks_blocked()
                release.set()
            assert len(failures) == 3  # the held ask was answered, the queued ones failed
            assert all("'Worker pool' stopped before a worker took" in str(exc) for exc in failures)


async def test_a_stream_goes_to_one_worker() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Worker, min=2, max=2)
            producers = set()
            for _ in range(2):
                async with pool.stream(3) as items:
                    got = [item async for item in items]
                assert [g.split(" ")[0] for g in got] == ["0", "1", "2"]
                assert len({g.split(" from ")[1] for g in got}) == 1
                producers.add(got[0].split(" from ")[1])
            assert len(producers) == 2  # round-robin across streams


class LastStarted:
    """A routing of one's own: always the newest worker."""

    broadcast = False
    balancing = False

    def pick(self, workers: list[trouper.ActorRef], msg: object, load: object) -> object:
        return workers[-1]


async def test_a_routing_object_of_ones_own() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Worker, min=3, max=3, routing=LastStarted())
            paths = {await pool.ask(Job(n=i)) for i in range(5)}
            assert len(paths) == 1


async def test_past_the_restart_intensity_the_pool_itself_is_restarted() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Worker, min=1, max=1)
            first = await pool.ask(b"me")
            for _ in range(4):  # OneForOne allows 3 restarts within 5 s
                with pytest.raises(ValueError, match="on purpose"):
                    await pool.ask(Crash())
            # The pool failed with SupervisionError; /user restarted it, with
            # a fresh worker, behind the same ref.
            while True:
                now = await pool.ask(b"me")
                if now != first:
                    break
                await trio.sleep(0.01)
            assert now.path.startswith(pool.path + "/")
            assert (await pool_status(pool)).size == 1
