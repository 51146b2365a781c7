"""Settings for every test run.

Hypothesis runs derandomised by default (a fixed seed per test), so a CI run
is reproducible and a property that holds today cannot fail tomorrow on a
lucky draw; ``HYPOTHESIS_PROFILE=random`` searches afresh (and prints a
reproducer blob on failure). No example database is written in the tree.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

from redis_helper import RedisServer
from servers import PostgresServer

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("random", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _fresh_repeat_limiter() -> Iterator[None]:
    """Each test starts with an empty table of repeated warnings: a warning a
    test waits for must not be suppressed because an earlier test in the
    same process logged the same one (docs/observability.md, rate limiting)."""
    from trouper.observability import RepeatLimiter
    from trouper.observability._logs import repeat_filter

    repeats = repeat_filter()
    before = repeats.limiter
    repeats.limiter = RepeatLimiter(before.window) if before is not None else None
    try:
        yield
    finally:
        repeats.limiter = before


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session (tests/servers.py); never skipped."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL, dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real ``redis-server`` for the session, on a free loopback port.

    Tests that stop or restart Redis start their own ``RedisServer`` instead.
    """
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A clean keyspace per test: a fresh key ``prefix`` on the session server.

    Every key a ``redis://`` store writes starts with the URL's prefix, so
    tests sharing the server (db 0) never see each other's data, and opening
    the same URL again later sees the same data (a "restart").
    """
    return f"{redis_server.url}?prefix=t{uuid.uuid4().hex[:12]}:"
