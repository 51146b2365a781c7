"""The session API as HTTP JSON routes on trouper's gateway.

| route | service call | answer |
|---|---|---|
| ``POST /api/sessions`` {user, connection, ttl?, data?} | ``open`` | 201 new, 200 existing |
| ``GET /api/sessions/{id}`` | ``get`` | 200, 404 unknown/expired |
| ``PATCH /api/sessions/{id}`` {data} | ``update`` | 200 |
| ``DELETE /api/sessions/{id}`` | ``delete`` | 204, 404 unknown |
| ``POST /api/sessions/{id}/heartbeat`` | ``heartbeat`` | 200 |
| ``GET /api/sessions?user=&connection=&active=&limit=`` | ``list`` | 200 |

Errors go through the gateway's status map (docs/web.md): a refused
argument (``InvalidArgument``) is 400 with the reason in ``message``, an
unknown session (``SessionNotFound``, an ``ActorNotFound``) 404, a body
that does not decode 422. When the node has no service of its own and a
remote one answers, its ``SessionNotFound`` arrives boxed
(``trouper.RemoteError``): it is unboxed here, so it is a 404 all the same.
"""

# No ``from __future__ import annotations``: the gateway reads the handlers' annotations.
from collections.abc import Awaitable
from typing import TypeVar

import msgspec

import trouper
from trouper.web import Response, Routes

from ._record import SessionNotFound, SessionRecord
from ._service import SessionService

#: The deadline of one HTTP call of the service: finding a session's actor
#: may wait for gossip and a re-creation (see ``_service.OWNER_WAIT``).
CALL_TIMEOUT = 15.0


class NewSession(msgspec.Struct, frozen=True):
    user: str
    connection: str
    ttl: float | None = None
    data: dict[str, str] | None = None


class NewData(msgspec.Struct, frozen=True):
    data: dict[str, str]


T = TypeVar("T")


async def _unboxed(call: Awaitable[T]) -> T:
    try:
        return await call
    except trouper.RemoteError as exc:
        if exc.type_name.endswith(".SessionNotFound"):
            raise SessionNotFound(exc.message) from None
        raise


def _json(record: SessionRecord, status: int) -> Response:
    return Response(msgspec.json.encode(record), status, content_type="application/json")


def add_session_routes(routes: Routes, node: trouper.Node) -> None:
    """Serve the session API on ``routes`` through this node's service
    (``local-first``: the node's own ``collab-sessions`` when it has one)."""
    sessions = node.proxy(SessionService, timeout=CALL_TIMEOUT, balance="local-first")

    @routes.route("/api/sessions", methods=["POST"], tags=("sessions",))
    async def create_session(body: NewSession) -> Response:
        """Create a session (or return the live one of this user on this connection)."""
        opened = await _unboxed(sessions.open(body.user, body.connection, body.ttl, body.data))
        return _json(opened.record, 201 if opened.created else 200)

    @routes.route("/api/sessions", methods=["GET"], tags=("sessions",))
    async def list_sessions(
        user: str | None = None,
        connection: str | None = None,
        active: bool = False,
        limit: int = 100,
    ) -> list[SessionRecord]:
        """Live sessions by user, by connection, or all active ones."""
        return await _unboxed(sessions.list(user, connection, active, limit))

    @routes.route("/api/sessions/{session_id}", methods=["GET"], tags=("sessions",))
    async def get_session(session_id: str) -> SessionRecord:
        return await _unboxed(sessions.get(session_id))

    @routes.route("/api/sessions/{session_id}", methods=["PATCH"], tags=("sessions",))
    async def update_session(session_id: str, body: NewData) -> SessionRecord:
        return await _unboxed(sessions.update(session_id, body.data))

    @routes.route("/api/sessions/{session_id}", methods=["DELETE"], tags=("sessions",))
    async def delete_session(session_id: str) -> None:
        if not await _unboxed(sessions.delete(session_id)):
            raise SessionNotFound(f"no session {session_id!r} (unknown, expired or deleted)")

    @routes.route("/api/sessions/{session_id}/heartbeat", methods=["POST"], tags=("sessions",))
    async def heartbeat_session(session_id: str) -> SessionRecord:
        return await _unboxed(sessions.heartbeat(session_id))
