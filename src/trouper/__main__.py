"""``python -m trouper``: the command line."""

from .cli import main

main()
