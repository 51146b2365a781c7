"""Every ```python block in README.md and docs/*.md runs, as-is, and succeeds.

Each block is written to a file in a fresh temporary directory and run there in
its own interpreter (``sys.executable``), so blocks cannot lean on each other or
on the repository as the working directory. Blocks that are deliberately
fragments are fenced as ```text or ```py-fragment and are not collected.
The examples assert their own results, so a broken runtime fails them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)")
TIMEOUT = 60.0


def python_blocks(text: str) -> list[str]:
    """The bodies of the fenced blocks whose info string is exactly ``python``."""
    blocks: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        ticks, info = opening["ticks"], opening["info"]
        body: list[str] = []
        i += 1
        while i < len(lines):
            closing = FENCE.match(lines[i])
            if (
                closing is not None
                and closing["ticks"][0] == ticks[0]
                and len(closing["ticks"]) >= len(ticks)
                and not closing["info"]
            ):
                break
            body.append(lines[i])
            i += 1
        i += 1  # past the closing fence (or the end of an unclosed block)
        if info.lower() == "python":
            blocks.append("\n".join(body) + "\n")
    return blocks


def collect() -> list[pytest.ParameterSet]:
    params = []
    for path in DOC_FILES:
        if not path.exists():
            continue
        rel = path.relative_to(ROOT).as_posix()
        for index, source in enumerate(python_blocks(path.read_text(encoding="utf-8"))):
            params.append(pytest.param(rel, source, id=f"{rel}:{index}"))
    return params


BLOCKS = collect()


def test_the_parser_skips_fragments() -> None:
    text = (
        "```python\nprint(1)\n```\n"
        "```text\nnot code\n```\n"
        "```py-fragment\nawait x\n```\n"
        "````python\n```\nnested\n```\n````\n"
    )
    assert python_blocks(text) == ["print(1)\n", "```\nnested\n```\n"]


def test_every_document_has_examples() -> None:
    for name in ("README.md", "docs/index.md", "docs/actors.md", "docs/supervision.md"):
        assert (ROOT / name).exists(), f"{name} is missing"
    counted = {rel for rel, _ in (param.values for param in BLOCKS)}
    for name in ("README.md", "docs/actors.md", "docs/supervision.md"):
        assert name in counted, f"{name} has no ```python example"


def servers_for(source: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment naming the test servers an example reads (started on demand)."""
    env = dict(os.environ)
    if "TROUPER_TEST_POSTGRES_URL" in source:  # a fresh database on the session's server
        env["TROUPER_TEST_POSTGRES_URL"] = request.getfixturevalue("postgres_url")
    if "TROUPER_TEST_REDIS_URL" in source:
        env["TROUPER_TEST_REDIS_URL"] = request.getfixturevalue("redis_server").url
    return env


@pytest.mark.parametrize(("doc", "source"), BLOCKS)
def test_doc_example_runs(
    doc: str, source: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=servers_for(source, request),
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{doc}: the example did not finish within {TIMEOUT}s\n{exc.stdout or ''}")
    assert result.returncode == 0, (
        f"{doc}: the example exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
