"""``make bench-net``: trouper transports between two namespaces on an impaired link."""
