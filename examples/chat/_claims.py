"""``NameClaims``: who holds each user name in one room (pure, no I/O).

A room holds at most one session per name, compared in canonical form
(``canonical_name``). A session claims a name that is free or its own; it
takes over a name held by another session only with that holder's resume
secret (the same browser tab, reconnected), compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Generic, TypeVar

from ._protocol import canonical_name

S = TypeVar("S")


class NameClaims(Generic[S]):
    def __init__(self) -> None:
        #: canonical name -> (its session, that session's resume secret or "")
        self._holders: dict[str, tuple[S, str]] = {}

    def __len__(self) -> int:
        return len(self._holders)

    def holder(self, user: str) -> S | None:
        held = self._holders.get(canonical_name(user))
        return None if held is None else held[0]

    def may_claim(self, user: str, session: S, resume: str) -> bool:
        held = self._holders.get(canonical_name(user))
        if held is None or held[0] == session:
            return True
        secret = held[1]
        return bool(secret and resume) and hmac.compare_digest(secret, resume)

    def claim(self, user: str, session: S, resume: str) -> S | None:
        """Give ``user`` to ``session``; the previous holder it replaces, if
        another. Call only when ``may_claim`` is true."""
        if not self.may_claim(user, session, resume):
            raise ValueError(f"the name {user!r} is another session's")
        name = canonical_name(user)
        held = self._holders.get(name)
        self._holders[name] = (session, resume)
        return None if held is None or held[0] == session else held[0]

    def release(self, user: str, session: S) -> bool:
        """Free ``user`` if ``session`` holds it; True if it did."""
        name = canonical_name(user)
        held = self._holders.get(name)
        if held is None or held[0] != session:
            return False
        del self._holders[name]
        return True
