"""Messages the runtime itself delivers to actors and subscribers."""

from __future__ import annotations

from typing import Any

import msgspec


class Terminated(msgspec.Struct, frozen=True):
    """A watched actor stopped. ``reason`` is ``"normal"``, ``"killed"``,
    ``"error: ..."`` or, across nodes, ``"node-down"``."""

    ref: Any
    reason: str


class DeadLetter(msgspec.Struct, frozen=True):
    """A message that no actor handled: its recipient was dead, had no
    handler for it, or failed while handling it."""

    message: Any
    sender: Any
    recipient: Any
    reason: str
