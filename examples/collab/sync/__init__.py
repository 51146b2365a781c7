"""The state-sync service: documents, operations, locks, statistics, subscriptions."""
