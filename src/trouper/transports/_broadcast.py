"""``broadcast(sessions, data)``: one message to many sessions, a result each.

Every session is sent to concurrently, each for at most ``timeout``
seconds, so a slow session (its send buffer full) or a dead one never holds
up the others. Because ``send`` queues a message whole or not at all, giving
up on a slow session leaves its stream intact: it gets ``SendTimeout`` and
stays open. The size check is done once, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable

import trio

from trouper._errors import ConfigurationError, SendTimeout, TrouperError

from ._session import MessageSession

__all__ = ["broadcast"]


async def broadcast(
    sessions: Iterable[MessageSession],
    data: bytes | bytearray | memoryview,
    *,
    timeout: float = 1.0,
) -> dict[str, TrouperError | None]:
    """Send ``data`` to every session; ``{session.id: None or the error}``.

    ``timeout`` (seconds, > 0) bounds the wait for each session's send
    buffer; a session that stays full gets ``SendTimeout`` (retryable).
    Errors are returned, never raised, except for bad arguments
    (``ConfigurationError``).
    """
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
        raise ConfigurationError(f"timeout must be a number > 0, got {timeout!r}")
    targets: dict[str, MessageSession] = {}
    for session in sessions:
        if not isinstance(session, MessageSession):
            raise ConfigurationError(f"broadcast sends to MessageSessions, not {session!r}")
        targets.setdefault(session.id, session)
    payload = bytes(data) if isinstance(data, bytearray | memoryview) else data
    results: dict[str, TrouperError | None] = {}

    async def one(session: MessageSession) -> None:
        try:
            with trio.move_on_after(timeout) as scope:
                await session.send(payload)
            if scope.cancelled_caught:
                raise (
                    SendTimeout(f"the send buffer stayed full for {timeout}s; nothing was sent")
                    .with_session(session.id)
                    .with_operation("broadcast")
                )
        except TrouperError as exc:
            if exc.operation == "send":
                exc.with_operation("broadcast")
            results[session.id] = exc
        else:
            results[session.id] = None

    async with trio.open_nursery() as nursery:
        for session in targets.values():
            nursery.start_soon(one, session)
    return {session_id: results[session_id] for session_id in targets}
