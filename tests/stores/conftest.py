"""Fixtures for the store tests: one URL per backend, reopenable for "restarts"."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL; opening it again later sees the same data."""
    if request.param == "memory":
        return f"memory://test-{uuid.uuid4().hex}"  # named: survives close/reopen
    if request.param == "postgres":  # a fresh database on the session's server
        url: str = request.getfixturevalue("postgres_url")
        return url.replace("postgresql://", "postgres://", 1)  # the store's backend name
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))  # a fresh key prefix
    return f"sqlite:///{tmp_path}/x.db"
