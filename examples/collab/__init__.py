"""AetherFlow on trouper: sessions, state sync and a collaborative editor.

- ``examples.collab.sessions``: the session service (one ``Session`` actor per
  session, TTL and heartbeats, AetherFlow's Redis layout or any trouper store).
- ``examples.collab.sync``: the state-sync service (a ``DocumentActor`` per
  document owning one pycrdt ``Doc``, persisted as an update log with
  snapshots; locks as fenced leases; statistics; ``subscribe`` streams).
- the editor: the gateway's WebSocket speaks the standard Yjs sync and
  awareness protocol to a CodeMirror page bundled from npm at ``make`` time.

See docs/collab.md.
"""
