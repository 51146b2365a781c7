"""Child-process entry point: ``python -m benchmarks._child MODULE:FUNCTION N``.

Imports ``benchmarks.cases.MODULE``, calls ``FUNCTION(N)`` and prints ``{"value": float}``
as the last line of stdout. Each measurement gets a fresh interpreter, so one case's heap,
threads or imports never colour another's.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable


def resolve(spec: str) -> Callable[[int], float]:
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"expected MODULE:FUNCTION, got {spec!r}")
    module = importlib.import_module(f"benchmarks.cases.{module_name}")
    fn: Callable[[int], float] = getattr(module, function_name)
    return fn


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m benchmarks._child MODULE:FUNCTION N", file=sys.stderr)
        return 2
    fn = resolve(argv[0])
    value = float(fn(int(argv[1])))
    sys.stdout.write(json.dumps({"value": value}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
