"""Structured logging: who logged (node, actor, trace), how it is written, and
how often the same warning may repeat.

Everything trouper logs goes through stdlib ``logging`` under the ``trouper``
logger tree. Importing trouper attaches two filters to each logger of the
tree (filters on a logger see only the records logged on it, not those
propagated from children, hence one per logger; ``TREE`` names them all and
a test checks every logger in the source is listed):

* ``ContextFilter`` stamps each record with ``node``, ``actor``, ``trace_id``
  and ``span_id``, read from context variables of the running task (the
  current cell, the node being hosted, OpenTelemetry's current span), so any
  handler the application installs can show them;
* ``RepeatFilter`` rate-limits repeated identical warnings and errors
  (``RepeatLimiter``, one for the process).

``configure_logging`` is for applications and the ``trouper`` command: it
installs one handler writing text or one JSON object per line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable, Mapping
from typing import Any

from ..runtime._ref import current_cell, current_node_id
from ._repeats import WINDOW, RepeatLimiter

try:
    from opentelemetry import trace as _otel
except ImportError:  # pragma: no cover - opentelemetry-api is optional here
    _otel = None  # type: ignore[assignment]

#: Every logger trouper uses. Loggers created later in the tree (a module
#: imported lazily) are covered as long as their name is here.
TREE = (
    "trouper",
    "trouper.admin",
    "trouper.admin.dashboard",
    "trouper.admin.hypercorn",
    "trouper.cli",
    "trouper.deadletters",
    "trouper.discovery",
    "trouper.persistence",
    "trouper.pools",
    "trouper.remote",
    "trouper.services",
    "trouper.transports",
    "trouper.web",
    "trouper.web.access",
    "trouper.web.hypercorn",
)

#: The attributes ``ContextFilter`` adds to a record (None when unknown).
FIELDS = ("node", "actor", "trace_id", "span_id")


def context_fields() -> tuple[str | None, str | None, str | None, str | None]:
    """(node id, actor path, trace id, span id) of the running task."""
    cell = current_cell.get()
    if cell is not None:
        node: str | None = cell.node.id
        actor: str | None = cell.ref.path
    else:
        node, actor = current_node_id.get(), None
    trace_id = span_id = None
    if _otel is not None:
        span = _otel.get_current_span().get_span_context()
        if span.is_valid:
            trace_id = format(span.trace_id, "032x")
            span_id = format(span.span_id, "016x")
    return node, actor, trace_id, span_id


class ContextFilter(logging.Filter):
    """Stamps ``node``, ``actor``, ``trace_id`` and ``span_id`` on a record;
    never drops one, never overwrites a field given with ``extra=``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trouper_context", False):
            return True
        values = context_fields()
        for name, value in zip(FIELDS, values, strict=True):
            if not hasattr(record, name):
                setattr(record, name, value)
        record.trouper_context = True
        return True


def repeat_key(record: logging.LogRecord) -> Hashable:
    """What makes two records "the same": the logger, the message template
    and the arguments that say who or what (node ids, URLs, error texts),
    not the numbers (counts, sizes, durations), which vary between
    repeats. ``extra={"repeat_key": ...}`` overrides the arguments part."""
    given = getattr(record, "repeat_key", None)
    if given is not None:
        return (record.name, str(record.msg), str(given))
    args: Any = record.args
    try:
        if isinstance(args, Mapping):
            args = tuple(v for _, v in sorted(args.items(), key=lambda kv: str(kv[0])))
        ident = tuple(str(a) for a in args or () if not isinstance(a, int | float))
    except Exception:
        # An argument whose str() fails: logging must not raise in the
        # caller (the handler reports the bad argument when it formats).
        ident = ()
    return (record.name, record.levelno, str(record.msg), ident)


class RepeatFilter(logging.Filter):
    """Drops a warning (or worse) seen within the window already; the next
    one let through says ``[suppressed N similar]`` (and carries
    ``record.suppressed``). Records below WARNING are never limited."""

    def __init__(self, limiter: RepeatLimiter) -> None:
        super().__init__()
        self.limiter: RepeatLimiter | None = limiter
        # Records come from threads too (trio.to_thread); the table is not
        # thread-safe by itself.
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        limiter = self.limiter
        if limiter is None or record.levelno < logging.WARNING:
            return True
        if hasattr(record, "suppressed"):
            return True  # judged already (a handler filter after the logger's)
        with self._lock:
            verdict = limiter.check(repeat_key(record), time.monotonic())
        if not verdict.emit:
            return False
        record.suppressed = verdict.suppressed
        if verdict.suppressed:
            record.msg = f"{record.msg} [suppressed {verdict.suppressed} similar]"
        return True


_context = ContextFilter()
_repeats = RepeatFilter(RepeatLimiter(WINDOW))


def repeat_filter() -> RepeatFilter:
    """The process's one ``RepeatFilter`` (its ``limiter`` has the table)."""
    return _repeats


def install() -> None:
    """Attach the two filters to every logger of the tree (idempotent)."""
    names = set(TREE)
    names.update(
        n for n in logging.Logger.manager.loggerDict if n == "trouper" or n.startswith("trouper.")
    )
    for name in sorted(names):
        logger = logging.getLogger(name)
        if _context not in logger.filters:
            logger.addFilter(_context)
        if _repeats not in logger.filters:
            logger.addFilter(_repeats)


install()
