"""The collaborative editor's benchmark (issue 15): see docs/collab-bench.md."""
