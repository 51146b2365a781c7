"""One trace runs through a worker pool: the worker's handler span is in the
sender's trace, for tells and asks alike."""

from __future__ import annotations

import msgspec
import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import trouper


class Seen(msgspec.Struct):
    trace_id: int


class Where(msgspec.Struct):
    out: trio.MemorySendChannel[int] | None = None


class Traced(trouper.Actor):
    @trouper.handler
    async def where(self, msg: Where) -> int:
        trace_id = trace.get_current_span().get_span_context().trace_id
        if msg.out is not None:
            msg.out.send_nowait(trace_id)
        return trace_id


async def test_tells_and_asks_through_a_pool_stay_in_the_senders_trace() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    send, recv = trio.open_memory_channel[int](4)
    with trio.fail_after(10):
        async with trouper.open_node(tracing=provider) as node:
            for routing in ("round-robin", "broadcast"):
                pool = await node.spawn_pool(Traced, min=2, max=2, routing=routing)
                with tracer.start_as_current_span("root") as root:
                    root_id = root.get_span_context().trace_id
                    await pool.tell(Where(send))
                    asked = await pool.ask(Where())
                told = await recv.receive()
                assert told == root_id
                assert asked == (root_id if routing != "broadcast" else [root_id, root_id])
            assert recv.receive_nowait() == root_id  # the broadcast's second worker
