"""Naming what the program got wrong: unknown options and misspelt choices.

A misspelt keyword should be answered in the caller's words, not with the
``TypeError`` of some internal ``__init__`` three frames down:
``unknown node option 'listn' (did you mean 'listen'?)`` names the option as it
was written and the one that was probably meant. Both the node's options and
the string-valued choices (``restart="prmanent"``) use the same suggestion, so
every such message reads alike.

Pure: no trio, no I/O; the runtime calls these before it builds anything.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from ._errors import ConfigurationError

__all__ = ["check_options", "closest", "suggestion"]

#: difflib's default: close enough to be a typo, far enough to not be a guess
_CUTOFF = 0.6


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``name`` most probably misspells, or None if none is close.

    A candidate that differs only in case wins outright (``"Permanent"``
    means ``"permanent"``); otherwise difflib's similarity ratio decides, and
    ties go to the earlier candidate so the answer is stable.
    """
    pool = list(dict.fromkeys(candidates))  # ordered, deduplicated
    folded = name.casefold()
    for candidate in pool:
        if candidate.casefold() == folded:
            return candidate
    # difflib.get_close_matches breaks ties by comparing the strings; here the
    # earlier candidate wins, so the caller's order (say, declaration order)
    # decides between equally likely readings.
    best, best_score = None, _CUTOFF
    matcher = difflib.SequenceMatcher(b=name)
    for candidate in pool:
        matcher.set_seq1(candidate)
        score = matcher.ratio()
        if score > best_score or (best is None and score == best_score):
            best, best_score = candidate, score
    return best


def suggestion(name: str, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` or ``" (valid: 'a', 'b')"``: the tail of a message.

    When nothing is close the valid names are listed instead, sorted, so the
    reader never has to go and look them up.
    """
    pool = list(dict.fromkeys(candidates))
    match = closest(name, pool)
    if match is not None:
        return f" (did you mean {match!r}?)"
    if not pool:
        return " (none are valid here)"
    return f" (valid: {', '.join(repr(c) for c in sorted(pool))})"


def check_options(
    given: Mapping[str, object] | Iterable[str],
    valid: Iterable[str],
    what: str = "node option",
) -> None:
    """Raise ``ConfigurationError`` naming every name in ``given`` not in ``valid``.

    ``given`` is the caller's ``**options`` (a mapping: its keys are checked)
    or just the names. One string is taken as one name, not as its letters.
    Every unknown name is reported, in the order given, each with its own
    suggestion: fixing one typo should not reveal the next only on rerun.
    """
    names: Iterable[str] = (given,) if isinstance(given, str) else given
    known = list(dict.fromkeys(valid))
    allowed = set(known)
    unknown = [name for name in names if name not in allowed]
    if not unknown:
        return
    parts = [
        f"{name!r}{suggestion(name, known)}" if isinstance(name, str) else repr(name)
        for name in unknown
    ]
    plural = "s" if len(unknown) > 1 else ""
    raise ConfigurationError(f"unknown {what}{plural} {', '.join(parts)}")
