"""Real database servers for the tests: ``PostgresServer`` lives in
``benchmarks/_postgres_server.py`` (benchmarks may not import ``tests/``)."""

from benchmarks._postgres_server import PostgresServer as PostgresServer
from benchmarks._postgres_server import free_port as free_port

__all__ = ["PostgresServer", "free_port"]
