"""Static files from ``WebGateway.static_dir``, with validators and caching headers.

Each file answers with an ``ETag`` made of its size and modification time
(no hashing of contents: a stat is enough to revalidate), ``Last-Modified``
and ``Cache-Control`` (``WebGateway.static_cache_control``, ``no-cache`` by
default: the browser keeps the file but asks each time, and a matching
``If-None-Match`` costs a 304 without a body). The file system is touched
in a worker thread, never on the Trio loop. A path that leaves the
directory (``..``, a symlink out, a NUL) is a 404, like a missing file.
"""

from __future__ import annotations

import mimetypes
import os
from email.utils import formatdate
from pathlib import Path

import trio

from ._h1 import Request, Response

__all__ = ["StaticFiles", "content_type", "resolve"]

_TEXT_TYPES = ("application/javascript", "application/json", "image/svg+xml")


class StaticFiles:
    def __init__(self, root: Path, cache_control: str = "no-cache") -> None:
        self.root = root.resolve()
        self.cache_control = cache_control

    async def __call__(self, request: Request) -> Response | None:
        """The file's response, or None when there is no such file."""
        return await trio.to_thread.run_sync(
            self._load, request.path, request.header("if-none-match")
        )

    def _load(self, path: str, if_none_match: str | None) -> Response | None:
        file = resolve(self.root, path)
        if file is None:
            return None
        try:
            stat = file.stat()
            etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
            headers = [
                ("etag", etag),
                ("last-modified", formatdate(stat.st_mtime, usegmt=True)),
                ("cache-control", self.cache_control),
                ("x-content-type-options", "nosniff"),
            ]
            if if_none_match is not None and _matches(if_none_match, etag):
                return Response(b"", 304, headers)
            # HEAD reads it too: the answer carries the length it leaves out.
            body = file.read_bytes()
        except OSError:
            return None
        return Response(body, 200, headers, content_type(file))


def _matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def resolve(root: Path, path: str) -> Path | None:
    """The file under ``root`` that ``path`` names, or None: never anything
    outside it (``..``, absolute parts, symlinks out)."""
    if "\x00" in path or "\\" in path:
        return None
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        return None
    candidate = root.joinpath(*parts)
    if path.endswith("/") or not parts or candidate.is_dir():
        candidate = candidate / "index.html"
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    if not os.access(resolved, os.R_OK):
        return None
    return resolved


def content_type(file: Path) -> str:
    guessed, _ = mimetypes.guess_type(file.name)
    if file.suffix in (".js", ".mjs"):
        guessed = "text/javascript"
    elif file.suffix == ".wasm":
        guessed = "application/wasm"
    result = guessed or "application/octet-stream"
    if result.startswith("text/") or result in _TEXT_TYPES:
        result += "; charset=utf-8"
    return result
