"""Remoting: links, peers, membership, remote spawn and streams, the wire glue.

``Remoting`` is what ``open_node(cookie=...)`` plugs into a node as its
``trouper.runtime.RemoteLayer``; ``RemoteConfig`` holds its settings and
every limit it holds peers to (docs/remote.md lists them).
"""

from ._config import REMOTE_OPTIONS as REMOTE_OPTIONS
from ._config import RemoteConfig as RemoteConfig
from ._layer import Remoting as Remoting
from ._spawn_node import NodeHandle as NodeHandle
from ._stats import PeerStatistics as PeerStatistics

__all__ = ["REMOTE_OPTIONS", "NodeHandle", "PeerStatistics", "RemoteConfig", "Remoting"]
