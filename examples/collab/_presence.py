"""Each editor connection holds a session of the session service
(``examples.collab.sessions``): created when it connects (with the user and
the connection id), heartbeaten every ttl/3 while it is open, deleted when
it closes. A lock taken under that session is released when the session
ends, so locks die with the connection, even when its node dies (the
session then expires after its TTL).

The session service being unavailable does not stop editing: the link
logs it, and the connection simply holds no session (and can take no lock).
"""

import logging

import trouper

from .sessions import SessionService

log = logging.getLogger("examples.collab.edge")

#: How long one call to the session service may take (seconds).
CALL_TIMEOUT = 5.0
#: Heartbeats per TTL: one missed or late heartbeat does not end a session.
HEARTBEATS_PER_TTL = 3


class SessionLink:
    """One connection's session: create, heartbeat, delete."""

    def __init__(self, node: trouper.Node, user: str, connection: str, ttl: float | None) -> None:
        self.node = node
        self.user = user
        self.connection = connection
        self.ttl = ttl
        self.session_id: str | None = None

    def _proxy(self) -> SessionService:
        return self.node.proxy(SessionService, timeout=CALL_TIMEOUT)

    async def create(self) -> float | None:
        """Create the session; the heartbeat interval, or None without a session."""
        try:
            record = await self._proxy().create(self.user, self.connection, ttl=self.ttl)
        except trouper.TrouperError as exc:
            log.warning("collab %s: no session (%s): no locks for it", self.connection, exc)
            return None
        self.session_id = record.id
        return float(record.ttl) / HEARTBEATS_PER_TTL

    async def heartbeat(self) -> None:
        if self.session_id is None:
            return
        try:
            await self._proxy().heartbeat(self.session_id)
        except trouper.TrouperError as exc:
            log.warning("collab %s: heartbeat failed: %s", self.connection, exc)

    async def delete(self) -> None:
        if self.session_id is None:
            return
        session_id, self.session_id = self.session_id, None
        try:
            await self._proxy().delete(session_id)
        except trouper.TrouperError as exc:
            log.info("collab %s: session %s expires instead (%s)", self.connection, session_id, exc)
