"""Supervision: strategies, restart intensity, backoff, child specs."""

from ._strategy import Backoff as Backoff
from ._strategy import ChildSpec as ChildSpec
from ._strategy import OneForAll as OneForAll
from ._strategy import OneForOne as OneForOne
from ._strategy import RestartIntensity as RestartIntensity
from ._strategy import RestForOne as RestForOne
from ._strategy import Strategy as Strategy
from ._strategy import child as child
from ._supervisor import ChildCounts as ChildCounts
from ._supervisor import ChildInfo as ChildInfo
from ._supervisor import Supervisor as Supervisor

__all__ = [
    "Backoff",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "OneForAll",
    "OneForOne",
    "RestForOne",
    "RestartIntensity",
    "Strategy",
    "Supervisor",
    "child",
]
