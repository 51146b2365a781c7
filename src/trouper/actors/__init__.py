"""Actors: the ``Actor`` base class, ``@handler`` dispatch, runtime messages."""

from ._actor import Actor as Actor
from ._actor import handler as handler
from ._messages import DeadLetter as DeadLetter
from ._messages import Terminated as Terminated

__all__ = ["Actor", "DeadLetter", "Terminated", "handler"]
