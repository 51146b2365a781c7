"""Services built on the remote layer: discovery (Redis, mDNS), and more.

The modules are private; public names are re-exported here and from
``trouper``.
"""
