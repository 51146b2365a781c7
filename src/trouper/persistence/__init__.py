"""Persistence: event-sourced actors and at-least-once delivery.

``PersistentActor`` stores events in a store (``trouper.stores``) and
rebuilds its state from them on every start; one instance writes per
``persistence_id``, fenced in the store (``trouper.StaleWriter``).
``AtLeastOnceDelivery`` resends until confirmed; ``Deduplicator`` drops the
duplicates on the receiving side. docs/persistence.md is the guide.
"""

from ._actor import PersistentActor as PersistentActor
from ._book import Deduplicator as Deduplicator
from ._book import DeliveryStatistics as DeliveryStatistics
from ._book import TooManyUnconfirmed as TooManyUnconfirmed
from ._delivery import AtLeastOnceDelivery as AtLeastOnceDelivery

__all__ = [
    "AtLeastOnceDelivery",
    "Deduplicator",
    "DeliveryStatistics",
    "PersistentActor",
    "TooManyUnconfirmed",
]
