"""A real PostgreSQL for the tests and the benchmarks, on a free loopback port.

Kept here because benchmarks may not import ``tests/``; ``tests/servers.py``
re-exports it.

``PostgresServer`` runs Debian's PostgreSQL (``make test`` installs it when
``initdb`` is missing) in a temporary directory: ``initdb`` as a normal user
(``runuser -u postgres`` when we are root, since PostgreSQL refuses to run
as root), listening only on 127.0.0.1 on a free port with its unix socket
inside the temporary directory, trust authentication for one superuser role
``trouper``. Disk flushes are switched off (``fsync=off``): these servers
hold test data only, and a test suite waiting on fsync tests nothing.

``kill()`` stops it as a crash would (``pg_ctl stop -m immediate``) and
``start()`` brings it back on the same port with the same data, for outage
tests. ``create_database()`` gives each test a fresh, empty database.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["PostgresServer", "free_port", "postgres_bin"]

ROLE = "trouper"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian keeps initdb off PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL is missing: `make postgres` installs it with apt-get")
    return Path(initdb).parent


class PostgresServer:
    """One throwaway PostgreSQL cluster; ``start()`` it, ``stop()`` it (removes the files)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin = postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="trouper-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self._initialised = False
        self.running = False

    @property
    def url(self) -> str:
        """The URL of the maintenance database ``postgres``."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 60.0) -> None:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {proc.stderr}{proc.stdout}\n{log}")

    def _initdb(self) -> None:
        self.sockets.mkdir()
        if os.geteuid() == 0:
            for path in (self.root, self.sockets):
                shutil.chown(path, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8")
        self._initialised = True

    def start(self, timeout: float = 30.0) -> None:
        if not self._initialised:
            self._initdb()
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.sockets}",
                "-c listen_addresses=127.0.0.1",
                "-c max_connections=300",
                # fsync=off: a commit is written to the kernel but never
                # flushed, so it survives kill() (a crash of the server, not
                # of the machine). synchronous_commit stays on: off would
                # lose the last commits on kill(), and outage tests count them.
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c shared_buffers=32MB",
            ]
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", str(int(timeout)), "start", timeout=timeout + 5)  # fmt: skip
        self.running = True
        deadline = time.monotonic() + timeout
        while not self.answers():  # pg_ctl -w waits too; this checks the TCP listener itself
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not answer on port {self.port}")
            time.sleep(0.02)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """Stop as a crash would: no checkpoint, every connection cut at once."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.running = False

    def stop(self) -> None:
        """Stop and remove every file of this cluster."""
        try:
            if self.running:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
                self.running = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _admin(self, sql: str) -> None:
        import psycopg  # the tests' dependency, not trouper's at import time

        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
