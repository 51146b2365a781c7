"""``make soak``: three trouper node processes under load and ``kill -9``, checked.

The driver (``_driver``) starts three ``_node`` processes; the seed ``n1`` lives
throughout, while ``n2`` and ``n3`` are killed (or sent SIGTERM) and restarted at
seeded random times. Every node hosts a fast and a slow actor and sends its peers
steady asks, bursts of tells to their slow actors, and occasional bursts of
concurrent asks (``_workload``). Each process journals what it sent, what reached it
and every down it declared, in append-only files that survive ``kill -9``
(``_journal``). Afterwards ``_check`` holds the journals against the driver's record
and ``_report`` prints the figures. Only trouper's public API is used, so the test
outlives rewrites of the runtime.
"""
