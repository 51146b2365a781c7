"""Observability: structured logs (``configure_logging``, the context every
record carries, rate limiting of repeated warnings). See
docs/observability.md."""

from ._logformat import JsonFormatter as JsonFormatter
from ._logformat import TextFormatter as TextFormatter
from ._logformat import configure_logging as configure_logging
from ._logs import ContextFilter as ContextFilter
from ._logs import RepeatFilter as RepeatFilter
from ._repeats import RepeatLimiter as RepeatLimiter
from ._repeats import RepeatStatistics as RepeatStatistics

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "RepeatFilter",
    "RepeatLimiter",
    "RepeatStatistics",
    "TextFormatter",
    "configure_logging",
]
