"""Child processes of the benchmark: started here, always stopped here."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import IO, Any

from benchmarks._runner import REPO_ROOT, child_env, read_line

STOP_GRACE = 5.0  # seconds a child gets to exit after its stdin closes


def progress(text: str) -> None:
    print(f"[bench-net] {text}", file=sys.stderr, flush=True)


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def start(argv: Sequence[str], *, pass_fds: Sequence[int] = ()) -> subprocess.Popen[str]:
    """Start a child that exits when its stdin closes; stderr goes to ours."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=child_env(),
        pass_fds=tuple(pass_fds),
        # Its own session: a Ctrl-C reaches only us, and we stop the children in order.
        start_new_session=True,
    )


def read_json(stream: IO[str] | None, timeout: float, what: str) -> dict[str, Any]:
    """The next stdout line of a child, as JSON; raise if none comes within ``timeout``."""
    line = read_line(stream, timeout, what)
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise RuntimeError(f"{what}: unreadable output {line!r}") from exc
    if not isinstance(record, dict):
        raise RuntimeError(f"{what}: unexpected output {line!r}")
    return record


def stop(proc: subprocess.Popen[str]) -> str:
    """Close stdin, wait, then terminate and kill if needed; return what stdout still had."""
    if proc.stdin is not None and not proc.stdin.closed:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    try:
        proc.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    rest = proc.stdout.read() if proc.stdout is not None else ""
    if proc.stdout is not None:
        proc.stdout.close()
    return rest
