"""How log records are written: text or one JSON object per line, and the
one handler ``configure_logging`` installs (``TROUPER_LOG``,
``TROUPER_LOG_LEVEL``, ``trouper node --log-format``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

from .._errors import ConfigurationError
from ._logs import FIELDS, ContextFilter, install, repeat_filter
from ._logwriter import LineWriter
from ._repeats import RepeatLimiter

FORMATS = ("text", "json")
#: Environment variables read when ``format`` / ``level`` are not given.
ENV_FORMAT = "TROUPER_LOG"
ENV_LEVEL = "TROUPER_LOG_LEVEL"


def _timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, tz=UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp`` (ISO 8601, UTC), ``level``,
    ``logger``, ``message``, ``node``, ``actor``, ``trace_id``, ``span_id``
    (null when unknown), ``exception`` (the traceback text) when the record
    has one, and ``suppressed`` when it carries a repeat summary."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            out[name] = getattr(record, name, None)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        if suppressed := getattr(record, "suppressed", 0):
            out["suppressed"] = suppressed
        # default=str: a field given with extra= may be any object; the line
        # must still be written.
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``TIMESTAMP LEVEL LOGGER [node actor trace=ID] message``: the bracket
    holds only what is known."""

    def format(self, record: logging.LogRecord) -> str:
        where = [str(v) for v in (getattr(record, "node", None), getattr(record, "actor", None))]
        where = [w for w in where if w != "None"]
        trace = getattr(record, "trace_id", None)
        if trace:
            where.append(f"trace={trace}")
        context = f" [{' '.join(where)}]" if where else ""
        line = f"{_timestamp(record)} {record.levelname} {record.name}{context} "
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


_installed: LineWriter | None = None


def _level(level: int | str | None) -> int:
    if level is None:
        level = os.environ.get(ENV_LEVEL) or "INFO"
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    value = logging.getLevelName(str(level).upper())
    if not isinstance(value, int):
        raise ConfigurationError(
            f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return value


def configure_logging(
    format: str | None = None,
    level: int | str | None = None,
    *,
    stream: IO[str] | None = None,
    repeat_window: float | None = 60.0,
) -> LineWriter:
    """Write log records to ``stream`` (default: stderr) as ``"text"`` or
    ``"json"`` (one object per line), at ``level`` and above. The handler
    formats each record in the task that logs it and writes from a thread of
    its own, so a stream nobody reads never stalls the Trio loop (its
    ``flush()`` waits until what is queued is written).

    ``format`` defaults to ``$TROUPER_LOG`` (else text), ``level`` to
    ``$TROUPER_LOG_LEVEL`` (else INFO). The handler goes on the root logger,
    so the application's own records are written alike and carry the node,
    actor and trace too; calling again replaces it (handlers installed by
    others are left alone). ``repeat_window`` is how long a repeated warning
    stays quiet; None turns the rate limiting off. Returns the handler.
    """
    global _installed
    if format is None:
        format = os.environ.get(ENV_FORMAT) or "text"
    if format not in FORMATS:
        raise ConfigurationError(f"unknown log format {format!r}: use 'text' or 'json'")
    threshold = _level(level)
    limiter = repeat_filter().limiter
    if repeat_window is not None and not repeat_window > 0:
        raise ConfigurationError(f"repeat_window must be > 0 seconds, not {repeat_window!r}")
    install()
    handler = LineWriter(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
        _installed.close()
    root.addHandler(handler)
    root.setLevel(threshold)
    _installed = handler
    if repeat_window is None:
        repeat_filter().limiter = None
    elif limiter is None or limiter.window != repeat_window:
        repeat_filter().limiter = RepeatLimiter(repeat_window)
    return handler


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """``--log-format`` and ``--log-level`` (``trouper node``); both default
    to None, which lets ``configure_logging`` read the environment."""
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default=None,
        help=f"text, or one JSON object per line on stderr (default: ${ENV_FORMAT}, else text)",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        metavar="LEVEL",
        help=f"DEBUG, INFO, WARNING or ERROR (default: ${ENV_LEVEL}, else INFO)",
    )


def configure_from_env() -> None:
    """``open_node``'s hook: with ``$TROUPER_LOG`` set and nothing configured
    yet, configure logging from the environment (once per process)."""
    if _installed is None and os.environ.get(ENV_FORMAT):
        configure_logging()
