"""A real ``redis-server`` on a free loopback port, for tests and benchmarks.

``make test`` installs Debian's redis-server when it is missing; these
helpers start it as a subprocess with no persistence (``--save ''
--appendonly no``), wait until it answers PING, and stop it (``kill()``
as an outage would, then ``start()`` again on the same port, empty).

It lives under ``benchmarks/`` because benchmarks may not import ``tests/``;
the tests import it through ``tests/redis_helper.py``. A benchmark case that
needs a Redis store (the persistence cases run on every backend) asks for a
store URL; it starts a throwaway server unless ``TROUPER_BENCH_REDIS_URL``
names one::

    with redis_store_url() as url:  # redis://127.0.0.1:PORT/0?prefix=bench-...:
        trio.run(measure, url)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Self

__all__ = ["RedisServer", "free_port", "redis_store_url"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, port: int | None = None, *, password: str | None = None) -> None:
        self.port = port or free_port()
        self.password = password  # requirepass: clients must AUTH with it
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: `make test` installs it with apt-get")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                answer = s.recv(64)
                # With requirepass, a live server answers NOAUTH before AUTH.
                return answer.startswith(b"+PONG") or answer.startswith(b"-NOAUTH")
        except OSError:
            return False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextmanager
def redis_store_url() -> Iterator[str]:
    """A ``redis://`` store URL with a fresh key prefix, for one benchmark run.

    On ``TROUPER_BENCH_REDIS_URL`` (``redis://host:port/db``, with or
    without options) if set, else on a ``RedisServer`` started here and
    killed after.
    """
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    given = os.environ.get("TROUPER_BENCH_REDIS_URL")
    if given:
        yield f"{given}{'&' if '?' in given else '?'}prefix={prefix}"
        return
    with RedisServer() as server:
        yield f"{server.url}?prefix={prefix}"
