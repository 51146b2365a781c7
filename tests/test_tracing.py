"""OpenTelemetry tracing across real nodes: one trace from a caller on node A
through a service on node B to an actor on node C, the context carried by
remote tells, asks and streams, the current span inside handlers, stream
spans that end per item, and nothing at all when tracing is off.

Spans go to the SDK's in-memory exporter through a provider handed to each
node (``tracing=provider``), so no test touches the global tracer provider.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent import futures
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import trouper
from raw_peer import dial_handshaken
from trouper.observability._tracing import Tracing, _otlp_provider, make_tracing
from trouper.protocols import (
    Ask,
    Failure,
    FrameDecoder,
    FrameEncoder,
    Goodbye,
    Reply,
    WireRef,
)

COOKIE = b"tracing-cookie"


@trouper.message
class Lookup(msgspec.Struct):
    item: str


@trouper.message
class Note(msgspec.Struct):
    text: str


class Seen(msgspec.Struct):
    """The current span as a handler saw it (ids in hex: they are 128 and 64 bits)."""

    trace_hex: str
    span_hex: str
    name: str

    @property
    def trace_id(self) -> int:
        return int(self.trace_hex, 16)

    @property
    def span_id(self) -> int:
        return int(self.span_hex, 16)


def _seen() -> Seen:
    span = trace.get_current_span()
    ctx = span.get_span_context()
    name = getattr(span, "name", "")
    return Seen(format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), name)


class Store(trouper.Actor):
    """The actor at the end of the chain (node C)."""

    def __init__(self, out: trio.MemorySendChannel[Seen] | None = None) -> None:
        self.out = out

    @trouper.handler
    async def lookup(self, msg: Lookup) -> int:
        return len(msg.item)

    @trouper.handler
    async def note(self, msg: Note) -> None:
        if self.out is not None:
            await self.out.send(_seen())

    @trouper.handler
    async def where(self, msg: str) -> Seen:
        return _seen()

    @trouper.handler
    async def count(self, msg: int) -> AsyncIterator[Seen]:
        for _ in range(msg):
            yield _seen()

    @trouper.handler
    async def talk(self, msg: bytes, channel: trouper.Channel[Seen, str]) -> None:
        await channel.send(_seen())


@trouper.service("catalog")
class Catalog(trouper.Actor):
    """The service in the middle (node B): asks the store on another node."""

    @trouper.rpc
    async def price(self, item: str) -> int:
        store = await self.ctx.node.lookup("store", timeout=5)
        return 10 * int(await store.ask(Lookup(item)))


def recorder() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def lineage(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[str]:
    """The names from ``span`` up to its root, following parent links."""
    by_id = {s.context.span_id: s for s in spans}
    names = []
    current: ReadableSpan | None = span
    while current is not None:
        names.append(current.name)
        parent = current.parent
        current = None if parent is None else by_id.get(parent.span_id)
    return names


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


@asynccontextmanager
async def cluster(provider: TracerProvider, count: int) -> AsyncIterator[list[trouper.Node]]:
    listen = "tcp://127.0.0.1:0"
    async with trouper.open_node("a", listen=listen, cookie=COOKIE, tracing=provider) as a:
        nodes = [a]
        async with trouper.open_node(
            "b", listen=listen, cookie=COOKIE, seeds=a.addresses, tracing=provider
        ) as b:
            nodes.append(b)
            if count == 2:
                for node in nodes:
                    await node.wait_for_members(2, timeout=10)
                yield nodes
                return
            async with trouper.open_node(
                "c", listen=listen, cookie=COOKIE, seeds=b.addresses, tracing=provider
            ) as c:
                nodes.append(c)
                for node in nodes:
                    await node.wait_for_members(3, timeout=10)
                yield nodes


async def test_a_call_from_a_through_a_service_on_b_to_an_actor_on_c_is_one_trace() -> None:
    provider, exporter = recorder()
    tracer = provider.get_tracer("test")
    with trio.fail_after(30):
        async with cluster(provider, 3) as (a, b, c):
            c.registry.register("store", await c.spawn(Store))
            await b.lookup("store", timeout=5)
            member = await b.spawn(Catalog)
            b.registry.register("catalog-b", member)
            there = await a.lookup("catalog-b", timeout=5)
            catalog = a.proxy(Catalog, timeout=5.0, members=[there])
            exporter.clear()
            with tracer.start_as_current_span("request") as root:
                assert await catalog.price("tea") == 30
    trace_id = root.get_span_context().trace_id
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    (store,) = named(spans, "handle Store.Lookup")
    assert lineage(store, spans) == [
        "handle Store.Lookup",  # C
        "receive Lookup",  # C
        "ask Lookup",  # B
        "catalog/price",  # B: the rpc server span
        "handle Catalog.Call",  # B
        "receive Call",  # B
        "ask Call",  # A
        "catalog/price",  # A: the rpc client span
        "request",
    ]
    nodes = [s.attributes["trouper.node"] for s in spans if s.name != "request"]
    assert set(nodes) == {"a", "b", "c"}
    client, server = sorted(named(spans, "catalog/price"), key=lambda s: s.start_time or 0)
    assert (client.kind, server.kind) == (SpanKind.CLIENT, SpanKind.SERVER)
    for span in (client, server):
        assert span.attributes["rpc.system"] == "trouper"
        assert span.attributes["rpc.service"] == "catalog"
        assert span.attributes["rpc.method"] == "price"
    assert store.attributes["trouper.node"] == "c"
    assert store.attributes["trouper.actor"].startswith("/user/")


async def test_a_remote_tell_and_a_remote_ask_carry_the_context() -> None:
    provider, exporter = recorder()
    tracer = provider.get_tracer("test")
    send, recv = trio.open_memory_channel[Seen](1)
    with trio.fail_after(30):
        async with cluster(provider, 2) as (a, b):
            b.registry.register("store", await b.spawn(Store, send))
            store = await a.lookup("store", timeout=5)
            with tracer.start_as_current_span("telling") as telling:
                await store.tell(Note("hi"))
            told = await recv.receive()
            with tracer.start_as_current_span("asking") as asking:
                asked = await store.ask("where")
    spans = exporter.get_finished_spans()
    assert told.trace_id == telling.get_span_context().trace_id
    assert asked.trace_id == asking.get_span_context().trace_id
    (handled,) = [s for s in spans if s.context.span_id == told.span_id]
    assert lineage(handled, spans) == ["handle Store.Note", "receive Note", "send Note", "telling"]
    (answered,) = [s for s in spans if s.context.span_id == asked.span_id]
    assert lineage(answered, spans) == ["handle Store.str", "receive str", "ask str", "asking"]
    (receive,) = named(spans, "receive Note")
    assert receive.kind == SpanKind.CONSUMER
    assert receive.attributes["trouper.peer"] == "a"


async def test_a_handler_sees_its_own_span_as_the_current_one() -> None:
    provider, exporter = recorder()
    tracer = provider.get_tracer("test")
    send, recv = trio.open_memory_channel[Seen](1)
    with trio.fail_after(10):
        async with trouper.open_node(tracing=provider) as node:
            store = await node.spawn(Store, send)
            with tracer.start_as_current_span("caller") as caller:
                seen = await store.ask("where")
                await store.tell(Note("x"))
                told = await recv.receive()
            untraced = await store.ask("where")  # no span around it: its ask is the root
    assert seen.name == "handle Store.str"
    assert told.name == "handle Store.Note"
    assert seen.trace_id == told.trace_id == caller.get_span_context().trace_id
    spans = exporter.get_finished_spans()
    (handled,) = [s for s in spans if s.context.span_id == seen.span_id]
    assert lineage(handled, spans) == ["handle Store.str", "ask str", "caller"]
    (noted,) = [s for s in spans if s.context.span_id == told.span_id]
    assert lineage(noted, spans) == ["handle Store.Note", "caller"]
    (alone,) = [s for s in spans if s.context.span_id == untraced.span_id]
    assert lineage(alone, spans) == ["handle Store.str", "ask str"]


class Failing(trouper.Actor):
    @trouper.handler
    async def fail(self, msg: str) -> None:
        raise ValueError(msg)


async def test_a_failed_handler_marks_its_span_as_an_error() -> None:
    provider, exporter = recorder()
    with trio.fail_after(10):
        async with trouper.open_node(tracing=provider) as node:
            ref = await node.spawn(Failing)
            with pytest.raises(ValueError, match="broken"):
                await ref.ask("broken")
    (handled,) = named(exporter.get_finished_spans(), "handle Failing.str")
    assert handled.status.status_code == trace.StatusCode.ERROR
    assert [e.name for e in handled.events] == ["exception"]


@pytest.mark.parametrize("where", ["local", "remote"])
async def test_stream_spans_end_at_each_item(where: str) -> None:
    provider, exporter = recorder()
    tracer = provider.get_tracer("test")
    with trio.fail_after(30):
        async with cluster(provider, 2) as (a, b):
            home = a if where == "local" else b
            home.registry.register("store", await home.spawn(Store))
            store = await a.lookup("store", timeout=5)
            seen = []
            with tracer.start_as_current_span("consumer") as consumer:
                async with store.stream(3, window=1) as items:
                    async for item in items:
                        # The item's span ended before the item was handed over.
                        ended = {s.context.span_id for s in exporter.get_finished_spans()}
                        assert item.span_id in ended
                        seen.append(item)
    spans = exporter.get_finished_spans()
    steps = named(spans, "stream Store.int")
    assert len({s.span_id for s in seen}) == 3  # a span per item, none shared
    assert len(steps) == 4  # and one for the step that found the end
    first = next(s for s in steps if s.context.span_id == seen[0].span_id)
    assert lineage(first, spans)[1] == "handle Store.int"
    assert all(s.trace_id == consumer.get_span_context().trace_id for s in seen)


@pytest.mark.parametrize("where", ["local", "remote"])
async def test_a_channel_handler_runs_in_the_openers_trace(where: str) -> None:
    provider, exporter = recorder()
    tracer = provider.get_tracer("test")
    with trio.fail_after(30):
        async with cluster(provider, 2) as (a, b):
            home = a if where == "local" else b
            home.registry.register("store", await home.spawn(Store))
            store = await a.lookup("store", timeout=5)
            with tracer.start_as_current_span("opener") as opener:
                async with store.channel(b"hello") as channel:
                    seen = await channel.receive()
    assert seen.trace_id == opener.get_span_context().trace_id
    spans = exporter.get_finished_spans()
    (handled,) = named(spans, "handle Store.bytes")
    expected = ["handle Store.bytes", "opener"]
    if where == "remote":
        expected.insert(1, "receive bytes")
    assert lineage(handled, spans) == expected


async def _raw_peer(url: str) -> tuple[trio.SocketStream, FrameDecoder]:
    """A raw TCP client that does a real handshake, then sends what it likes."""
    return await dial_handshaken(url, "raw", COOKIE)


async def test_a_peers_bad_traceparent_costs_its_message_only_the_parent() -> None:
    provider, exporter = recorder()
    good = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    sent = {1: good, 2: "garbage", 3: good + "-" + "x" * 200, 4: None}
    with trio.fail_after(20):
        async with trouper.open_node(
            "n1", listen="tcp://127.0.0.1:0", cookie=COOKIE, tracing=provider
        ) as node:
            ref = await node.spawn(Store)
            target = WireRef(node.id, ref.path, ref.uid)
            where = msgspec.Raw(msgspec.msgpack.encode("where"))
            stream, decoder = await _raw_peer(node.addresses[0])
            asks = [
                Ask(i, target, "builtins:str", where, None, 5.0, trace) for i, trace in sent.items()
            ]
            await stream.send_all(FrameEncoder().encode(asks))
            answers: dict[int, Seen] = {}
            while len(answers) < len(sent):
                for env in decoder.feed(await stream.receive_some(65536)):
                    assert not isinstance(env, Goodbye | Failure), env
                    if isinstance(env, Reply):
                        answers[env.id] = msgspec.msgpack.decode(env.payload, type=Seen)
            await stream.aclose()
    assert answers[1].trace_hex == "ab" * 16  # the peer's trace, continued
    spans = exporter.get_finished_spans()
    (first,) = [s for s in spans if s.context.span_id == answers[1].span_id]
    assert lineage(first, spans) == ["handle Store.str", "receive str"]
    (receive,) = [s for s in spans if first.parent and s.context.span_id == first.parent.span_id]
    assert receive.parent is not None and receive.parent.is_remote
    assert receive.parent.span_id == int("cd" * 8, 16)  # the raw peer's span
    for i in (2, 3, 4):  # each handled, in a trace of its own
        assert answers[i].trace_hex != "ab" * 16
    assert len({answers[i].trace_id for i in sent}) == len(sent)


async def test_tracing_off_creates_nothing() -> None:
    with trio.fail_after(10):
        async with trouper.open_node(tracing=False) as node:
            assert node.kernel.tracing is None
            store = await node.spawn(Store)
            seen = await store.ask("where")
        # The default follows the global provider as the node opens (another
        # test file of the same run may have configured one).
        configured = not isinstance(
            trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
        )
        async with trouper.open_node() as node:
            assert (node.kernel.tracing is not None) == configured
    assert not seen.trace_id  # the handler ran in no span at all


GLOBAL_PROVIDER = """
import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import trouper

class Echo(trouper.Actor):
    @trouper.handler
    async def echo(self, msg: str) -> str:
        return trace.get_current_span().name

async def main() -> None:
    async with trouper.open_node() as node:  # opened before any provider: off
        assert node.kernel.tracing is None
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    async with trouper.open_node() as node:  # the default: on, through it
        ref = await node.spawn(Echo)
        assert await ref.ask("x") == "handle Echo.str"
    print(sorted(span.name for span in exporter.get_finished_spans()))

trio.run(main)
"""


def test_by_default_a_node_traces_when_a_global_provider_is_configured() -> None:
    # A process of its own: the global provider can be set only once.
    done = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['ask str', 'handle Echo.str']"


async def test_bad_tracing_options_are_named() -> None:
    with pytest.raises(trouper.ConfigurationError, match="tracing must be"):
        async with trouper.open_node(tracing=3):
            pass
    for url in ["http://127.0.0.1:4317", "otlp://", "otlp://host:1/path"]:
        with pytest.raises(trouper.ConfigurationError, match="otlp://host:port"):
            async with trouper.open_node(tracing=url):
                pass


def test_an_otlp_url_makes_a_provider_of_the_nodes_own() -> None:
    provider = _otlp_provider("otlp://127.0.0.1:4317", "n1")
    try:
        assert isinstance(provider, TracerProvider)  # the SDK's, not the global one
        assert provider.resource.attributes["service.instance.id"] == "n1"
        assert make_tracing("otlp+insecure://127.0.0.1:4317", "n2") is not None
    finally:
        provider.shutdown()  # nothing was recorded: nothing is sent


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP/gRPC trace collector (the receiving half of the protocol)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.received = threading.Event()

    def Export(self, request: Any, context: Any) -> Any:  # the gRPC method's own name
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.names.extend(span.name for span in scope_spans.spans)
        self.received.set()
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_an_otlp_url_exports_to_a_collector_and_flushes_when_the_node_closes() -> None:
    import grpc

    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()  # grpc serves from its own threads
    try:
        with trio.fail_after(30):
            async with trouper.open_node(tracing=f"otlp+insecure://127.0.0.1:{port}") as node:
                ref = await node.spawn(Store)
                await ref.ask("where")
            # Closing the node flushed its exporter: the spans are there now.
            assert collector.received.is_set()
        assert {"ask str", "handle Store.str"} <= set(collector.names)
    finally:
        server.stop(grace=None)


TRACEPARENTS = st.from_regex(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", fullmatch=True)


@given(st.one_of(st.text(max_size=200), TRACEPARENTS, TRACEPARENTS.map(lambda t: t + "-x")))
def test_a_peers_traceparent_never_breaks_anything(text: str) -> None:
    found = trace.get_current_span(Tracing.extract(text)).get_span_context()
    if found.is_valid:  # only ever what the text itself says
        assert format(found.trace_id, "032x") in text
        assert format(found.span_id, "016x") in text
        assert found.is_remote


def test_a_valid_traceparent_round_trips() -> None:
    provider, _ = recorder()
    tracing = Tracing(provider, "n")
    with tracing.tracer.start_as_current_span("x") as span:
        parent = tracing.traceparent()
    assert parent is not None
    back = trace.get_current_span(Tracing.extract(parent)).get_span_context()
    assert (back.trace_id, back.span_id) == (
        span.get_span_context().trace_id,
        span.get_span_context().span_id,
    )
    too_long = parent + "-" + "0" * 200  # a future version may append; not this long
    assert not trace.get_current_span(Tracing.extract(too_long)).get_span_context().is_valid


def test_an_rpc_server_span_falls_back_to_the_calls_own_traceparent() -> None:
    """Inside a traced handler the server span is the handler's child; with no
    current span (no traced hop brought the call) it continues ``Call.trace``."""
    provider, exporter = recorder()
    tracing = Tracing(provider, "n")
    client = "00-" + "12" * 16 + "-" + "34" * 8 + "-01"
    with tracing.rpc_server("catalog", "price", client):
        pass
    with (
        tracing.tracer.start_as_current_span("handler") as handler,
        tracing.rpc_server("catalog", "price", client),
    ):
        pass
    alone, nested = named(exporter.get_finished_spans(), "catalog/price")
    assert alone.parent is not None and alone.parent.span_id == int("34" * 8, 16)
    assert alone.context.trace_id == int("12" * 16, 16)
    assert nested.parent is not None
    assert nested.parent.span_id == handler.get_span_context().span_id
    assert nested.kind == SpanKind.SERVER
