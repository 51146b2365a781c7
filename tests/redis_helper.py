"""The tests' way to a real ``redis-server``: ``benchmarks/_redis_server.py``
(kept there because benchmarks may not import ``tests/``)."""

from benchmarks._redis_server import RedisServer as RedisServer
from benchmarks._redis_server import free_port as free_port

__all__ = ["RedisServer", "free_port"]
