"""``python -m benchmarks.chat.trouper_server ARGS``: the chat example
(``python -m examples.chat ARGS``) with the open-file limit raised first."""

from __future__ import annotations

import sys

from ._limits import raise_nofile


def main() -> None:
    raise_nofile()
    from examples.chat.__main__ import main as chat_main

    sys.argv[0] = "python -m examples.chat"
    chat_main()


if __name__ == "__main__":
    main()
