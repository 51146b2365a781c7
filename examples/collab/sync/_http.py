"""The document routes of the page's sidebar: HTTP JSON over the
``StateSync`` service (the member on this node first).

| route | body | answer |
| --- | --- | --- |
| `GET /api/docs?limit=&after=` | | `{"documents": [{id, title, created}], "next_after": ""}` |
| `POST /api/docs` | `{id, title}` | 201, `{id, title, created, version, size}` |
| `GET /api/docs/{id}` | | `{id, title, created, version, size}` |
| `DELETE /api/docs/{id}` | | `{"deleted": bool}` |
| `GET /api/docs/{id}/stats` | | `DocStats` (docs/collab-sync.md) |
| `GET /api/docs/{id}/snapshots` | | `{"snapshots": [{name, version, time, size}]}` |
| `POST /api/docs/{id}/snapshots` | `{name}` | 201, `{name, version, time, size}` |
| `POST /api/docs/{id}/snapshots/{name}/restore` | | `{"version": int}` |
| `POST /api/docs/{id}/locks` | `{scope, session_id, ttl}` | 201, `{scope, token, expires_in}` |
| `DELETE /api/docs/{id}/locks/{scope}?session_id=&token=` | | `{"released": bool}` |

Errors are the gateway's: 400 for a refused argument (`invalid-argument`:
a bad id, a conflicting lock, a limit), 404 for an unknown document or
snapshot (`actor-not-found`), 422 for a body that does not decode.
"""

# No ``from __future__ import annotations``: route annotations are read at runtime.
import msgspec

import trouper
from trouper.web import Response, Routes

from ._service import CALL_TIMEOUT, StateSync

_json = msgspec.json.Encoder()


class NewDocument(msgspec.Struct, frozen=True):
    id: str
    title: str = ""


class NewSnapshot(msgspec.Struct, frozen=True):
    name: str


class NewLock(msgspec.Struct, frozen=True):
    scope: str
    session_id: str
    ttl: float = 30.0


def _created(value: object) -> Response:
    return Response(_json.encode(value), status=201, content_type="application/json")


def add_document_routes(routes: Routes, node: trouper.Node) -> None:
    """Register the routes above on ``routes``; they call ``StateSync``."""
    sync = node.proxy(StateSync, balance="local-first", timeout=CALL_TIMEOUT + 5)

    @routes.route("/api/docs", methods=["GET"], tags=["documents"])
    async def list_documents(limit: int = 100, after: str = "") -> object:
        """The documents, in id order (``after``: the previous page's ``next_after``)."""
        return await sync.list_documents(limit, after)

    @routes.route("/api/docs", methods=["POST"], tags=["documents"])
    async def create_document(body: NewDocument) -> Response:
        return _created(await sync.create_document(body.id, body.title))

    @routes.route("/api/docs/{doc}", methods=["GET"], tags=["documents"])
    async def get_document(doc: str) -> object:
        return await sync.get_document(doc)

    @routes.route("/api/docs/{doc}", methods=["DELETE"], tags=["documents"])
    async def delete_document(doc: str) -> dict[str, object]:
        return {"deleted": await sync.delete_document(doc)}

    @routes.route("/api/docs/{doc}/stats", methods=["GET"], tags=["documents"])
    async def stats(doc: str) -> object:
        return await sync.stats(doc)

    @routes.route("/api/docs/{doc}/snapshots", methods=["GET"], tags=["history"])
    async def list_snapshots(doc: str) -> object:
        return await sync.list_snapshots(doc)

    @routes.route("/api/docs/{doc}/snapshots", methods=["POST"], tags=["history"])
    async def save_snapshot(doc: str, body: NewSnapshot) -> Response:
        return _created(await sync.save_snapshot(doc, body.name))

    @routes.route("/api/docs/{doc}/snapshots/{name}/restore", methods=["POST"], tags=["history"])
    async def restore_snapshot(doc: str, name: str) -> dict[str, object]:
        return {"version": await sync.restore_snapshot(doc, name)}

    @routes.route("/api/docs/{doc}/locks", methods=["POST"], tags=["locks"])
    async def acquire_lock(doc: str, body: NewLock) -> Response:
        return _created(await sync.acquire_lock(doc, body.scope, body.session_id, body.ttl))

    @routes.route("/api/docs/{doc}/locks/{scope}", methods=["DELETE"], tags=["locks"])
    async def release_lock(
        doc: str, scope: str, session_id: str, token: int | None = None
    ) -> dict[str, object]:
        return {"released": await sync.release_lock(doc, scope, session_id, token)}
