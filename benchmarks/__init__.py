"""Side-by-side benchmarks: every trouper case runs against its baseline in the same run.

Run with ``python -m benchmarks`` (``make bench``); see ``benchmarks/_registry.py`` for the
list of cases and how to add one.
"""
