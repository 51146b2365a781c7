"""Actors: the ``Actor`` base class, ``@handler`` dispatch, the public
``ActorContext``, and the messages the runtime itself delivers."""

from ._actor import Actor as Actor
from ._actor import handler as handler
from ._actor import is_handler as is_handler
from ._context import ActorContext as ActorContext
from ._messages import DeadLetter as DeadLetter
from ._messages import PoisonPill as PoisonPill
from ._messages import SubscriptionEnded as SubscriptionEnded
from ._messages import Terminated as Terminated
from ._registration import message as message

__all__ = [
    "Actor",
    "ActorContext",
    "DeadLetter",
    "PoisonPill",
    "SubscriptionEnded",
    "Terminated",
    "handler",
    "is_handler",
    "message",
]
