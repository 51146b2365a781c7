"""Prometheus metrics (trouper.observability): the text of ``metrics_text``
after real traffic on real nodes, parsed with prometheus-client's parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

import trouper
from trouper.observability import metrics_registry, metrics_text
from trouper.runtime._counters import MAX_CLASSES, Counters, Histogram, reason_label

COOKIE = b"metrics-cookie"
FAST = {"heartbeat_interval": 0.1, "acceptable_pause": 0.5, "down_after": 2.0}


@trouper.message
class Work(msgspec.Struct):
    n: int


class Worker(trouper.Actor):
    @trouper.handler
    async def work(self, msg: Work) -> int:
        if msg.n < 0:
            raise ValueError("negative work")
        return msg.n


class Slow(trouper.Actor):
    @trouper.handler
    async def work(self, msg: Work) -> int:
        await trio.sleep(msg.n)
        return msg.n


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(node: trouper.Node) -> Samples:
    body, content_type = metrics_text(node)
    assert content_type.startswith("text/plain; version=0.0.4")
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


WORKER = f"{__name__}.Worker"


async def test_tells_are_counted_exactly_by_class_and_outcome() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            refs = [await node.spawn(Worker) for _ in range(3)]
            before = scrape(node)
            assert value(before, "trouper_messages_total", actor_class=WORKER, outcome="ok") == 0
            for i in range(300):
                await refs[i % 3].tell(Work(i))
            assert await refs[0].ask(Work(1)) == 1  # the tells before it are handled
            for ref in refs[1:]:
                await ref.ask(Work(2))
            after = scrape(node)
            ok = value(after, "trouper_messages_total", actor_class=WORKER, outcome="ok")
            assert ok == 303
            assert value(after, "trouper_actors", actor_class=WORKER, state="running") == 3
            assert value(after, "trouper_mailbox_depth", actor_class=WORKER) == 0
            # the durations are sampled: some, never more than were handled
            timed = value(after, "trouper_handler_duration_seconds_count", actor_class=WORKER)
            assert 0 < timed <= 303
            inf = value(
                after, "trouper_handler_duration_seconds_bucket", actor_class=WORKER, le="+Inf"
            )
            assert inf == timed


async def test_failures_restarts_unhandled_and_dead_letters() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Worker)
            await ref.tell(Work(-1))  # fails: a dead letter, and a restart
            await ref.tell("nobody handles a str")
            # Messages wait in the mailbox through the restart: once this
            # answer is back, the failure, the restart and the str are done.
            assert await ref.ask(Work(5)) == 5
            await node.dead_letters_ref.tell(Work(0))
            await trio.testing.wait_all_tasks_blocked()
            samples = scrape(node)
            assert value(samples, "trouper_restarts_total", actor_class=WORKER) == 1
            failed = value(samples, "trouper_messages_total", actor_class=WORKER, outcome="failed")
            assert failed == 1
            unhandled = value(
                samples, "trouper_messages_total", actor_class=WORKER, outcome="unhandled"
            )
            assert unhandled == 1
            assert value(samples, "trouper_messages_total", actor_class=WORKER, outcome="ok") == 1
            assert value(samples, "trouper_dead_letters_total", reason="failed") == 1
            assert value(samples, "trouper_dead_letters_total", reason="unhandled") == 1
            assert value(samples, "trouper_dead_letters_total", reason="sent") == 1
            await node.stop(ref)
            await ref.tell(Work(1))
            samples = scrape(node)
            assert value(samples, "trouper_dead_letters_total", reason="dead") == 1
            assert value(samples, "trouper_actors", actor_class=WORKER, state="running") == 0


async def test_asks_in_flight_and_timeouts(autojump_clock: trio.testing.MockClock) -> None:
    async with trouper.open_node() as node:
        ref = await node.spawn(Slow)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ref.ask, Work(5), 10)
            await trio.testing.wait_all_tasks_blocked()
            samples = scrape(node)
            assert value(samples, "trouper_asks_in_flight") == 1
            assert value(samples, "trouper_mailbox_depth", actor_class=f"{__name__}.Slow") == 0
        assert value(scrape(node), "trouper_asks_in_flight") == 0
        for _ in range(3):
            with pytest.raises(trouper.AskTimeout):
                await ref.ask(Work(60), timeout=1)
        samples = scrape(node)
        assert value(samples, "trouper_ask_timeouts_total") == 3
        assert value(samples, "trouper_asks_in_flight") == 0
        # the queued asks wait in the mailbox behind the one running
        depth = value(samples, "trouper_mailbox_depth", actor_class=f"{__name__}.Slow")
        assert depth == 2
        assert value(samples, "trouper_mailbox_depth_max", actor_class=f"{__name__}.Slow") == 2


async def test_metrics_off_counts_nothing_but_still_reports_actors() -> None:
    with trio.fail_after(10):
        async with trouper.open_node(metrics=False) as node:
            ref = await node.spawn(Worker)
            for i in range(10):
                await ref.tell(Work(i))
            await ref.ask(Work(0))
            samples = scrape(node)
            assert value(samples, "trouper_messages_total", actor_class=WORKER, outcome="ok") == 0
            assert value(samples, "trouper_actors", actor_class=WORKER, state="running") == 1


async def test_the_registry_is_one_per_node_and_takes_user_metrics() -> None:
    from prometheus_client import Counter

    with trio.fail_after(10):
        async with trouper.open_node() as node:
            registry = metrics_registry(node)
            assert metrics_registry(node) is registry
            orders = Counter("shop_orders", "Orders taken.", registry=registry)
            orders.inc(3)
            assert value(scrape(node), "shop_orders_total") == 3


def test_class_labels_are_capped() -> None:
    counters = Counters(True)
    classes = [type(f"C{i}", (), {}) for i in range(MAX_CLASSES + 5)]
    seen = {counters.of(cls).name for cls in classes}  # type: ignore[union-attr]
    assert len(seen) == MAX_CLASSES + 1
    assert "other" in seen
    assert counters.of(classes[-1]) is counters.other
    assert Counters(False).of(classes[0]) is None


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("unhandled", "unhandled"),
        ("failed: ValueError('x')", "failed"),
        ("actor is dead", "dead"),
        ("node down: no heartbeat for 3.0s", "node_down"),
        ("stream handler told: use ref.stream()", "wrong_call"),
        ("something a peer made up \x00", "other"),
    ],
)
def test_dead_letter_reasons_are_a_bounded_set(reason: str, label: str) -> None:
    assert reason_label(reason) == label


def test_histogram_buckets_are_cumulative() -> None:
    h = Histogram((0.1, 1.0))
    h.observe(0.05)
    h.observe(0.5, 3)
    h.observe(7.0)
    assert h.cumulative() == [("0.1", 1), ("1.0", 4), ("+Inf", 5)]
    assert h.sum == pytest.approx(0.05 + 1.5 + 7.0)


# ------------------------------------------------------------------ two nodes


@asynccontextmanager
async def two_nodes(**options: object) -> AsyncIterator[tuple[trouper.Node, trouper.Node]]:
    async with (
        trouper.open_node("m0", listen="tcp://127.0.0.1:0", cookie=COOKIE, **FAST, **options) as a,
        trouper.open_node(
            "m1", listen="tcp://127.0.0.1:0", seeds=a.addresses, cookie=COOKIE, **FAST, **options
        ) as b,
    ):
        await a.wait_for_members(2)
        await b.wait_for_members(2)
        yield a, b


async def test_peer_and_cluster_metrics_after_remote_traffic() -> None:
    with trio.fail_after(20):
        async with two_nodes() as (a, b):
            ref = await b.spawn(Worker, name="worker")
            remote = await a.lookup("worker", timeout=10)
            before = scrape(a)
            sent_before = value(before, "trouper_peer_sent_bytes_total", peer="m1")
            for i in range(50):
                await remote.tell(Work(i))
            assert await remote.ask(Work(7)) == 7
            samples_a = scrape(a)
            samples_b = scrape(b)
            assert value(samples_a, "trouper_cluster_members", status="up") == 2
            assert value(samples_b, "trouper_cluster_members", status="up") == 2
            # the remote node handled every one of them, counted by its class
            ok = value(samples_b, "trouper_messages_total", actor_class=WORKER, outcome="ok")
            assert ok == 51
            sent = value(samples_a, "trouper_peer_sent_bytes_total", peer="m1")
            assert sent > sent_before
            received_b = value(samples_b, "trouper_peer_received_bytes_total", peer="m0")
            assert received_b >= sent - sent_before
            frames_out = value(samples_a, "trouper_peer_frames_total", peer="m1", direction="sent")
            frames_in = value(
                samples_b, "trouper_peer_frames_total", peer="m0", direction="received"
            )
            assert frames_out >= 1 and frames_in >= 1
            assert value(samples_a, "trouper_peer_received_bytes_total", peer="m1") > 0
            assert ("trouper_peer_phi", (("peer", "m1"),)) in samples_a
            rtt = samples_a.get(("trouper_peer_rtt_seconds", (("peer", "m1"),)))
            assert rtt is not None and rtt >= 0
            await b.stop(ref)


async def test_link_closes_are_counted_by_reason() -> None:
    with trio.fail_after(20):
        async with trouper.open_node("c0", listen="tcp://127.0.0.1:0", cookie=COOKIE, **FAST) as a:
            async with trouper.open_node(
                "c1", listen="tcp://127.0.0.1:0", seeds=a.addresses, cookie=COOKIE, **FAST
            ) as b:
                await a.wait_for_members(2)
                await b.wait_for_members(2)
            # c1 left: its goodbye closes the link, and c0 counts it
            with trio.fail_after(10):
                while True:
                    closes = {
                        labels: v
                        for (name, labels), v in scrape(a).items()
                        if name == "trouper_link_closes_total" and v
                    }
                    if closes:
                        break
                    await trio.sleep(0.02)
            assert sum(closes.values()) >= 1
