"""OpenTelemetry tracing: the spans of asks, handler runs, remote hops and rpc.

Only ``opentelemetry-api`` is used here; an SDK (``trouper[otel]``) is what
records and exports. A node holds a ``Tracing`` in ``node.kernel.tracing``
when tracing is on and ``None`` when it is off: the runtime's hot paths test
that one attribute and create nothing at all when it is ``None``.

The W3C ``traceparent`` crosses the wire as a string appended to ``Tell``,
``Ask``, ``StreamOpen`` and the services' ``Call``; inside a node the parent
context travels with the mailbox item (``Reply.trace``, the runtime's
``TraceNote``), so a
handler's span is a child of whoever sent it the message, not of whatever
context its cell's task happened to inherit.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import trio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._errors import ConfigurationError

__all__ = ["MAX_TRACEPARENT", "SHUTDOWN_TIMEOUT", "Tracing", "make_tracing"]

#: Seconds a closing node waits for its own OTLP exporter to send what is left.
SHUTDOWN_TIMEOUT = 5.0

#: The longest ``traceparent`` a peer may send that is still read (a version
#: 00 one is 55 characters); a longer one is ignored, the message is not.
MAX_TRACEPARENT = 128

_PROPAGATOR = TraceContextTextMapPropagator()
_EMPTY = otel_context.Context()


def _configured(provider: Any) -> bool:
    """Whether ``provider`` records anything: the API's defaults do not."""
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def make_tracing(option: Any, node_id: str) -> Tracing | None:
    """The node's ``Tracing`` for ``open_node(tracing=option)``.

    ``None`` (the default): on if a tracer provider is configured globally
    when the node opens (``trace.set_tracer_provider``), else off. ``False``:
    off. ``True``: on, through the global provider (even one set later). A
    ``TracerProvider``: on, through that one (the node's own, nothing global).
    ``"otlp://host:port"``: on, exporting over OTLP/gRPC (needs ``trouper[otel]``).
    """
    if option is None:
        provider = trace.get_tracer_provider()
        return Tracing(provider, node_id) if _configured(provider) else None
    if option is False:
        return None
    if option is True:
        return Tracing(trace.get_tracer_provider(), node_id)
    if isinstance(option, str):
        return Tracing(_otlp_provider(option, node_id), node_id, owned=True)
    if isinstance(option, trace.TracerProvider):
        return Tracing(option, node_id)
    raise ConfigurationError(
        f"tracing must be None, True, False, a TracerProvider or 'otlp://host:port', not {option!r}"
    )


def _otlp_provider(url: str, node_id: str) -> trace.TracerProvider:
    scheme, sep, address = url.partition("://")
    if scheme not in ("otlp", "otlp+insecure") or not sep or not address or "/" in address:
        raise ConfigurationError(
            f"tracing={url!r}: an exporter URL is 'otlp://host:port' (or 'otlp+insecure://')"
        )
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            f"tracing={url!r} needs the OpenTelemetry SDK and OTLP exporter: "
            "pip install 'trouper[otel]'"
        ) from exc
    provider = TracerProvider(
        resource=Resource.create({"service.name": "trouper", "service.instance.id": node_id})
    )
    # The batch processor exports from its own thread: nothing here blocks
    # the Trio loop, and a collector that is down only drops spans.
    exporter = OTLPSpanExporter(endpoint=address, insecure=scheme == "otlp+insecure")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class _Current:
    """A started span made current for a ``with`` block, then ended; an
    exception leaving the block is recorded on it. (What the API's
    ``start_as_current_span`` does, without its layers of generator-based
    context managers: this runs once or twice per message.)"""

    __slots__ = ("span", "token")

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def __enter__(self) -> trace.Span:
        self.token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        otel_context.detach(self.token)
        span = self.span
        if exc is not None and span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {exc}"))
        span.end()


class Tracing:
    """What a node with tracing on does for each span; see docs/observability.md."""

    __slots__ = ("node_id", "owned", "tracer")

    def __init__(
        self, provider: trace.TracerProvider, node_id: str, *, owned: bool = False
    ) -> None:
        self.tracer = provider.get_tracer("trouper")
        self.node_id = node_id
        #: The provider, when the node made it (``otlp://``): it is the node's
        #: to flush and shut down when it closes.
        self.owned = provider if owned else None

    async def aclose(self) -> None:
        """Flush and shut down a provider of the node's own. The SDK blocks
        (it joins its export thread), so in a thread; shielded, so that the
        last spans are sent even when the node closes because it was
        cancelled, and bounded, so that an unreachable collector costs a
        closing node at most ``SHUTDOWN_TIMEOUT`` seconds."""
        provider = self.owned
        if provider is None:
            return
        self.owned = None
        shutdown = getattr(provider, "shutdown", None)
        if shutdown is None:  # pragma: no cover - an API-only provider
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + SHUTDOWN_TIMEOUT
            await trio.to_thread.run_sync(shutdown, abandon_on_cancel=True)

    # -- carrying the context --------------------------------------------------

    @staticmethod
    def context() -> Any:
        """The caller's context, to travel with a local mailbox item."""
        return otel_context.get_current()

    @staticmethod
    def traceparent() -> str | None:
        """The current span as a W3C ``traceparent`` (None without one)."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    @staticmethod
    def extract(traceparent: str | None) -> Any:
        """The context a peer's ``traceparent`` names (empty if none or bad:
        a malformed one costs the message its parent, nothing more)."""
        if not traceparent or len(traceparent) > MAX_TRACEPARENT:
            return _EMPTY
        return _PROPAGATOR.extract({"traceparent": traceparent}, context=_EMPTY)

    # -- spans -------------------------------------------------------------------

    def _current(
        self, name: str, kind: SpanKind, parent: Any, attributes: dict[str, Any]
    ) -> _Current:
        span = self.tracer.start_span(name, context=parent, kind=kind)
        if span.is_recording():  # a sampled-out span is given nothing
            span.set_attributes(attributes)
            span.set_attribute("trouper.node", self.node_id)
        return _Current(span)

    def ask(self, path: str, node: str, msg: Any) -> AbstractContextManager[Any]:
        kind = type(msg).__name__
        return self._current(
            f"ask {kind}",
            SpanKind.CLIENT,
            None,
            {"trouper.target": path, "trouper.target.node": node, "trouper.message.type": kind},
        )

    def http_server(
        self, method: str, route: str, traceparent: str | None
    ) -> AbstractContextManager[Any]:
        """One HTTP request served by the web gateway, a child of the
        client's ``traceparent`` (a root span without one)."""
        return self._current(
            f"{method} {route}",
            SpanKind.SERVER,
            self.extract(traceparent),
            {"http.request.method": method, "http.route": route},
        )

    def send(self, path: str, node: str, type_name: str) -> AbstractContextManager[Any]:
        """A remote tell leaving this node (ends once it is in the outbox)."""
        return self._current(
            f"send {type_name}",
            SpanKind.PRODUCER,
            None,
            {
                "trouper.target": path,
                "trouper.target.node": node,
                "trouper.message.type": type_name,
            },
        )

    def receive(self, traceparent: str | None, path: str, peer: str, type_name: str) -> Any:
        """A message that came over the wire: a ``receive`` span, a child of
        the sender's; returns the context its handler's span descends from."""
        span = self.tracer.start_span(
            f"receive {type_name.rpartition(':')[2]}",  # "module:Class" on the wire
            context=self.extract(traceparent),
            kind=SpanKind.CONSUMER,
        )
        if span.is_recording():
            span.set_attributes(
                {
                    "trouper.target": path,
                    "trouper.peer": peer,
                    "trouper.message.type": type_name,
                    "trouper.node": self.node_id,
                }
            )
        span.end()
        return trace.set_span_in_context(span, _EMPTY)

    def handler(self, path: str, cls: type, msg: Any, parent: Any) -> AbstractContextManager[Any]:
        """A handler run, current while it runs (``trace.get_current_span()``
        in a handler is this span). Without a parent it is a root span: the
        cell task's own inherited context belongs to someone else."""
        kind = type(msg).__name__
        return self._current(
            f"handle {cls.__name__}.{kind}",
            SpanKind.INTERNAL,
            _EMPTY if parent is None else parent,
            {
                "trouper.actor": path,
                "trouper.actor.class": cls.__qualname__,
                "trouper.message.type": kind,
            },
        )

    def stream_item(
        self, path: str, cls: type, msg: Any, index: int
    ) -> AbstractContextManager[Any]:
        """The producing of one stream item. It ends when the generator yields
        (a span never stays open across a ``yield``: opentelemetry-python #2606)."""
        kind = type(msg).__name__
        return self._current(
            f"stream {cls.__name__}.{kind}",
            SpanKind.PRODUCER,
            None,
            {"trouper.actor": path, "trouper.message.type": kind, "trouper.stream.item": index},
        )

    @staticmethod
    def failed(exc: BaseException) -> None:
        """Mark the current span (a handler's) as failed by ``exc``."""
        span = trace.get_current_span()
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, repr(exc)))

    # -- rpc (OpenTelemetry RPC conventions) ---------------------------------------

    def rpc_client(self, service: str, method: str) -> AbstractContextManager[Any]:
        """One logical rpc call on the caller's side (retries included)."""
        return self._rpc(service, method, SpanKind.CLIENT, None)

    def rpc_server(
        self, service: str, method: str, traceparent: str | None
    ) -> AbstractContextManager[Any]:
        """A call run by a service member: a child of the handler's span
        (itself descended from the client's), or, when the message came with
        no traced hop (a node with tracing off between), of the ``Call``'s
        own ``traceparent``."""
        parent = None
        if not trace.get_current_span().get_span_context().is_valid:
            parent = self.extract(traceparent)
        return self._rpc(service, method, SpanKind.SERVER, parent)

    def _rpc(
        self, service: str, method: str, kind: SpanKind, parent: Any
    ) -> AbstractContextManager[Any]:
        return self._current(
            f"{service}/{method}",
            kind,
            parent,
            {"rpc.system": "trouper", "rpc.service": service, "rpc.method": method},
        )
