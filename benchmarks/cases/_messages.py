"""Messages shared by the trouper and baseline sides, so both move the same objects."""

from __future__ import annotations

import msgspec


class Ping(msgspec.Struct):
    n: int
