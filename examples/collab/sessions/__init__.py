"""The session service: one ``Session`` actor per session, with TTL and heartbeats."""
