"""Measuring functions for the benchmark cases: ``fn(n: int) -> float``, one per side.

Trouper and pykka are imported inside the functions that need them, so a baseline's process
never pays for (or depends on) the system under test.
"""
