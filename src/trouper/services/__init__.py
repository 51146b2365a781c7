"""Services: what users build microservices with on top of actors.

Two-way channels (``trouper.Channel``, ``ref.channel``) live in the runtime,
next to streams; this package holds the entry point that lets a service
method take one (``channel_parameter``, ``channel_method``).
"""

from ..runtime import Channel as Channel
from ._channels import channel_method as channel_method
from ._channels import channel_parameter as channel_parameter

__all__ = ["Channel", "channel_method", "channel_parameter"]
