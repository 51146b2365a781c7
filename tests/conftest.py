"""Settings for every test run.

Hypothesis runs derandomised by default (a fixed seed per test), so a CI run
is reproducible and a property that holds today cannot fail tomorrow on a
lucky draw; ``HYPOTHESIS_PROFILE=random`` searches afresh (and prints a
reproducer blob on failure). No example database is written in the tree.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("random", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
