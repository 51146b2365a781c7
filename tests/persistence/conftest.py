"""Fixtures for the persistence tests: every test runs over every store backend.

``store_url`` is the one of tests/stores (same params: memory, sqlite,
postgres and redis). ``process_store_url`` is for tests where two processes
share the store, which a ``memory://`` store cannot do: sqlite, postgres and
redis.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # persist_actors, as the node processes import it

_spec = importlib.util.spec_from_file_location(
    "_stores_conftest", HERE.parent / "stores" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_stores = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_stores)

store_url = _stores.store_url


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def process_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL that several processes can share."""
    if request.param == "postgres":  # a fresh database on the session's server
        url: str = request.getfixturevalue("postgres_url")
        return url.replace("postgresql://", "postgres://", 1)
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))  # a fresh key prefix
    return f"sqlite:///{tmp_path}/shared.db"
