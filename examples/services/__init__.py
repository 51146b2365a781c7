"""A small shop built on trouper services: see ``python -m examples.services``."""
