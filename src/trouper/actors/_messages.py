"""Messages the runtime itself delivers to actors and subscribers."""

from __future__ import annotations

from typing import Any

import msgspec

from ..protocols import default_registry


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


class SubscriptionEnded(msgspec.Struct, frozen=True):
    """An actor's subscription to ``topic`` (``ctx.subscribe``) was ended by
    the runtime, not by the actor: with the ``"disconnect"`` policy, because
    the actor fell a whole buffer behind (``reason`` says so)."""

    topic: Any
    reason: str


class PoisonPill(msgspec.Struct, frozen=True):
    """Stops the actor that receives it once the messages queued before it
    are handled, as Akka's ``PoisonPill`` does; what arrives after it goes to
    dead letters. (``ctx.stop()`` is immediate: after the current message.)
    Its supervisor stops it for good, whatever its restart type. It may be
    told to an actor on another node."""


default_registry.register(PoisonPill, "trouper:PoisonPill")
