"""Settings for every test run.

Hypothesis runs derandomised by default (a fixed seed per test), so a CI run
is reproducible and a property that holds today cannot fail tomorrow on a
lucky draw; ``HYPOTHESIS_PROFILE=random`` searches afresh (and prints a
reproducer blob on failure). No example database is written in the tree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

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
