"""Structured logs on real nodes: every record carries its node, actor and
trace; the JSON and text formats; a wrong cookie redialled for seconds
logs a bounded number of lines."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from opentelemetry.sdk.trace import TracerProvider

import trouper
from trouper.observability import RepeatLimiter
from trouper.observability._logs import TREE, repeat_filter
from trouper.observability._logwriter import LineWriter

SRC = Path(__file__).resolve().parent.parent / "src" / "trouper"
COOKIE = b"logs-cookie"
tracer = TracerProvider().get_tracer("test_logs")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    """A handler on the root logger, as an application would install one."""
    handler, root = Capture(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    """configure_logging sets the root logger's level and handler: put both back."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)


@pytest.fixture
def limiter() -> Iterator[Callable[[float], RepeatLimiter]]:
    """Give the process's repeat filter a fresh table (and window)."""
    repeats = repeat_filter()
    before = repeats.limiter

    def make(window: float) -> RepeatLimiter:
        repeats.limiter = RepeatLimiter(window)
        return repeats.limiter

    try:
        yield make
    finally:
        repeats.limiter = before


class Talker(trouper.Actor):
    """Logs on the trouper tree and on an application logger, inside a span."""

    @trouper.handler
    async def say(self, msg: str) -> str:
        with tracer.start_as_current_span("say") as span:
            logging.getLogger("trouper").warning("talker says %s", msg)
            logging.getLogger("myapp").info("app says %s", msg)
            try:
                raise ValueError("boom")
            except ValueError:
                logging.getLogger("myapp").exception("it failed")
            return format(span.get_span_context().trace_id, "032x")

    @trouper.handler
    async def quiet(self, msg: int) -> None:
        logging.getLogger("trouper").warning("no span here %d", msg)


async def test_records_carry_node_actor_and_trace(captured: Capture) -> None:
    out = io.StringIO()
    handler = trouper.configure_logging("json", "DEBUG", stream=out)
    with trio.fail_after(10):
        async with trouper.open_node("logs-a") as node:
            talker = await node.spawn(Talker, name="talker")
            trace_id = await talker.ask("hello")
            await talker.ask(7)
            logging.getLogger("trouper").warning("from the body")
    await trio.to_thread.run_sync(handler.flush)
    mine = {r.getMessage(): r for r in captured.records}
    said = mine["talker says hello"]
    assert (said.node, said.actor, said.trace_id) == ("logs-a", "/user/talker", trace_id)
    assert re.fullmatch(r"[0-9a-f]{16}", said.span_id)
    quiet = mine["no span here 7"]
    assert (quiet.node, quiet.actor, quiet.trace_id, quiet.span_id) == (
        "logs-a",
        "/user/talker",
        None,
        None,
    )
    body = mine["from the body"]
    assert (body.node, body.actor) == ("logs-a", None)
    # The JSON handler stamps records of loggers outside the tree too.
    lines = {d["message"]: d for d in map(json.loads, out.getvalue().splitlines())}
    app = lines["app says hello"]
    assert app["logger"] == "myapp" and app["level"] == "INFO"
    assert (app["node"], app["actor"], app["trace_id"]) == ("logs-a", "/user/talker", trace_id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", app["timestamp"])
    failed = lines["it failed"]
    assert failed["level"] == "ERROR" and "ValueError: boom" in failed["exception"]
    assert "exception" not in app


async def test_text_format_names_what_is_known() -> None:
    out = io.StringIO()
    handler = trouper.configure_logging("text", "INFO", stream=out)
    with trio.fail_after(10):
        async with trouper.open_node("logs-t") as node:
            talker = await node.spawn(Talker, name="talker")
            trace_id = await talker.ask("hi")
    await trio.to_thread.run_sync(handler.flush)
    line = next(x for x in out.getvalue().splitlines() if x.endswith("talker says hi"))
    assert f" WARNING trouper [logs-t /user/talker trace={trace_id}] talker says hi" in line


@pytest.mark.parametrize(
    ("format", "level", "what"),
    [("xml", "INFO", "log format 'xml'"), ("json", "LOUD", "log level 'LOUD'")],
)
def test_bad_settings_are_named(format: str, level: str, what: str) -> None:
    with pytest.raises(trouper.ConfigurationError, match=what):
        trouper.configure_logging(format, level)
    with pytest.raises(trouper.ConfigurationError, match="repeat_window"):
        trouper.configure_logging("json", "INFO", repeat_window=0)


def test_every_logger_in_the_source_is_in_the_tree() -> None:
    """Filters on a logger apply to its own records only: a logger trouper
    uses but ``TREE`` forgets would escape the context and the limiting."""
    used = {
        m
        for path in SRC.rglob("*.py")
        for m in re.findall(r'getLogger\("([^"]+)"\)', path.read_text())
    }
    assert used and used <= set(TREE)
    for name in TREE:
        kinds = {type(f).__name__ for f in logging.getLogger(name).filters}
        assert {"ContextFilter", "RepeatFilter"} <= kinds, name


async def test_a_wrong_cookie_redialled_logs_a_bounded_number_of_lines(
    captured: Capture, limiter: Callable[[float], RepeatLimiter]
) -> None:
    """An intruder with the wrong cookie redials its seed for seconds (seven
    failed handshakes): each side logs the failure once per window, and the
    next line after the window says how many were suppressed. Attempts are
    counted where records are made, before any filter."""
    limiter(1.0)
    made: list[str] = []
    seven = trio.Event()
    factory = logging.getLogRecordFactory()

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)  # type: ignore[arg-type]
        if record.msg == "link %s -> %s: %s" and record.args and record.args[0] == "intruder":
            made.append(record.getMessage())
            if len(made) >= 7:
                seven.set()
        return record

    logging.setLogRecordFactory(counting)
    try:
        with trio.fail_after(30):
            async with (
                trouper.open_node("guarded", listen="tcp://127.0.0.1:0", cookie=COOKIE) as guarded,
                trouper.open_node("intruder", seeds=guarded.addresses, cookie=b"wrong"),
            ):
                await seven.wait()
    finally:
        logging.setLogRecordFactory(factory)
    assert all("cookie" in m for m in made), made[:1]
    said = [r.getMessage() for r in captured.records]
    dialled = [m for m in said if m.startswith("link intruder")]
    refused = [m for m in said if m.startswith("node guarded refused")]
    # Seven failures in a few seconds with a 1 s window: fewer lines, the
    # first one plain, a later one carrying the count of the dropped ones.
    assert 1 <= len(dialled) < len(made) and "suppressed" not in dialled[0]
    counts = [int(n) for m in dialled for n in re.findall(r"\[suppressed (\d+) similar\]", m)]
    assert counts and len(dialled) + sum(counts) <= len(made)
    assert 1 <= len(refused) < len(made)


class Stalled(io.StringIO):
    """A stream nobody reads: ``write`` blocks until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        assert self.release.wait(30)
        return super().write(text)


def test_a_stream_nobody_reads_stalls_no_logger() -> None:
    """The writer thread is stuck in ``write``: logging returns at once, at
    most ``max_pending`` lines wait, the rest are dropped and counted, and
    once the stream moves again a line says how many."""
    stream = Stalled()
    writer = LineWriter(stream, max_pending=5)
    writer.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test_logs.stalled")
    logger.propagate = False
    logger.addHandler(writer)
    try:
        logger.warning("line 0")
        assert stream.entered.wait(10)
        for i in range(1, 20):
            logger.warning("line %d", i)  # would hang here if written in the caller
        assert writer.dropped == 14
        stream.release.set()
        writer.flush()
    finally:
        stream.release.set()
        logger.removeHandler(writer)
        writer.close()
    lines = stream.getvalue().splitlines()
    assert lines == [f"line {i}" for i in range(6)] + [
        "14 log lines dropped: the log stream was not read fast enough"
    ]
