"""Server child processes of the collab benchmark, and their /proc figures."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._runner import REPO_ROOT, child_env, read_line, run_python
from benchmarks.chat._limits import cpu_seconds, rss_bytes

#: How long a server may take to print its JSON line (the trouper node opens its store first).
START_LIMIT = 60.0


def progress(text: str) -> None:
    print(f"[bench-collab] {text}", file=sys.stderr, flush=True)


class Server:
    """One server subprocess that prints a JSON line with ``http`` once serving."""

    def __init__(self, kind: str, argv: list[str]) -> None:
        self.kind = kind
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=REPO_ROOT,
            env=child_env(),
        )
        self.info: dict[str, Any] = {}
        try:
            while "http" not in self.info:
                line = read_line(self.proc.stdout, START_LIMIT, f"{kind} server")
                try:
                    self.info = json.loads(line)
                except ValueError:
                    continue  # a log line, not the announcement
        except (TimeoutError, RuntimeError) as exc:
            tail = self.log_tail()
            self.close()
            raise RuntimeError(f"{exc}; its stderr ends:\n{tail}") from exc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def http(self) -> str:
        return str(self.info["http"]).rstrip("/")

    def ws(self, path: str) -> str:
        return self.http.replace("http://", "ws://", 1) + path

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def log_tail(self, lines: int = 8) -> str:
        self.log.seek(0)
        return "".join(self.log.readlines()[-lines:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def trouper_server(store_dir: Path) -> Server:
    """``python -m examples.collab`` with a sqlite store (persistence on) in ``store_dir``."""
    store = f"sqlite:///{store_dir / 'collab.db'}"
    argv = ["-m", "examples.collab", "--http", "127.0.0.1:0", "--store", store]
    return Server("trouper", argv)


def baseline_server() -> Server:
    return Server("baseline", ["-m", "benchmarks.collab.baseline_server"])


def run_child(argv: list[str], timeout: float, what: str) -> dict[str, Any]:
    """Run ``python ARGV`` to completion; its last stdout line, parsed as JSON."""
    result: dict[str, Any] = json.loads(run_python(argv, timeout, what, stderr_lines=8))
    return result
