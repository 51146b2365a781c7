"""Runnable examples of trouper (``python -m examples.<name>``)."""
