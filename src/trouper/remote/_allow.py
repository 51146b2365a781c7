"""Which actor classes another node may spawn here: the ``allow_spawn`` list.

A remote ``Spawn`` names a class by path, ``"module:QualName"``, and that path
comes from the network. So the order of the checks is the point of this
module: the path's *syntax* is checked first (pure string work), then the
operator's allow-list, and only a path that both accept reaches
``importlib.import_module``. The network never chooses what code runs.

The allow-list is a list of globs over class paths::

    "myapp.workers:*"        any class defined at the top of myapp.workers
    "myapp.workers:**"       ... and the classes nested in them (Outer.Inner)
    "myapp.*:Worker"         Worker in any direct submodule of myapp
    "myapp.**:*"             any top-level class in any module under myapp

``*`` matches within one dotted segment (it stops at dots, as a shell glob
stops at slashes), ``**`` crosses dots, ``?`` is one character other than a
dot; neither crosses the ``:``. ``fnmatch`` (what this replaces) lets ``*``
cross dots, so ``mod:*`` admitted ``mod:trouper.Actor``. Matching is a small
NFA walk, linear in the path's length whatever the pattern: a regular
expression built from globs backtracks polynomially on ``**.**.**``, and the
path that would make it spin is the peer's to choose.

A match is not enough: the class must be an ``Actor`` subclass *defined* in
the named module under the named qualname (``cls.__module__`` and
``cls.__qualname__``). A name a module merely imports (``from trouper import
Actor``, ``import os``) is never reachable through that module, whatever the
glob.

Pure: no trio. ``resolve_actor_class`` does import the allowed module, which
runs that module's code: allow only modules whose import is harmless.
"""

from __future__ import annotations

import importlib
import inspect
import keyword
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._errors import ConfigurationError, SpawnRefused

if TYPE_CHECKING:
    from ..actors._actor import Actor

__all__ = [
    "MAX_CLASS_PATH",
    "AllowList",
    "allowed",
    "resolve_actor_class",
    "validate_class_path",
]

#: Longest class path accepted (and longest pattern): real ones are < 100.
MAX_CLASS_PATH = 512
#: How much of a refused path or of an import error an error message quotes:
#: the message may travel back to the peer, which chose the path.
_QUOTE = 100
_PATTERN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:*?")
_STAR, _DSTAR, _ONE = "*", "**", "?"
_MISSING = object()


def _cut(text: str) -> str:
    """``text``, cut short: a 1 MB path must not become a 1 MB error."""
    return text if len(text) <= _QUOTE else text[:_QUOTE] + "..."


def _quote(text: str) -> str:
    """``repr(text)``, cut short like ``_cut``."""
    return repr(text) if len(text) <= _QUOTE else repr(text[:_QUOTE]) + "..."


# ----------------------------------------------------------- class paths


def _segment_problem(segment: str) -> str | None:
    if not segment:
        return "has an empty name between dots"
    if not segment.isascii():
        return f"has a non-ASCII name {_quote(segment)} (only ASCII identifiers are accepted)"
    if not segment.isidentifier():
        return f"has {_quote(segment)}, which is not an identifier"
    if keyword.iskeyword(segment):
        return f"has the keyword {segment!r}"
    # ``pkg.__init__`` or ``pkg.__main__`` would run a package's code again or
    # its command line; ``Cls.__base__`` and kin lead outside the class.
    if segment.startswith("__") and segment.endswith("__") and len(segment) > 4:
        return f"has the dunder name {segment!r}"
    return None


def _path_problem(path: object) -> str | None:
    """Why ``path`` is not an absolute ``"module:QualName"``, or None."""
    if not isinstance(path, str):
        return f"is of type {type(path).__name__}, not a string"
    if len(path) > MAX_CLASS_PATH:
        return f"is {len(path)} characters long (at most {MAX_CLASS_PATH})"
    if path.count(":") != 1:
        return "must be 'module:QualName', with exactly one ':'"
    module, _, qualname = path.partition(":")
    if not module:
        return "has no module before ':'"
    if module.startswith("."):
        return "names a relative module (class paths are absolute)"
    if not qualname:
        return "has no class name after ':'"
    if module != "__main__":  # the running program's main module: not re-run
        for segment in module.split("."):
            if problem := _segment_problem(segment):
                return f"{problem} in its module"
    for segment in qualname.split("."):
        if problem := _segment_problem(segment):
            return f"{problem} in its class name"
    return None


def validate_class_path(path: object) -> tuple[str, str]:
    """``(module, qualname)`` of an absolute ``"module:QualName"`` class path.

    Raises ``SpawnRefused`` naming the problem: not a string, longer than
    ``MAX_CLASS_PATH``, not exactly one ``:``, a relative module
    (``".mod:X"``, which ``import_module`` would answer with a ``TypeError``),
    empty parts (``"a..b:C"``, ``"mod:"``, ``":X"``), or a part that is not an
    ASCII identifier, is a keyword, or is a dunder name (other than the
    module ``__main__`` as a whole). ASCII only: Python folds some Unicode
    look-alikes together in source but not in ``getattr``, and a path that
    means two things is not worth the trouble.
    """
    problem = _path_problem(path)
    if problem is not None:
        shown = f" {_quote(path)}" if isinstance(path, str) else ""
        raise SpawnRefused(f"refused class path{shown}: it {problem}")
    assert isinstance(path, str)
    module, _, qualname = path.partition(":")
    return module, qualname


# --------------------------------------------------------------- patterns


def _compile(pattern: object) -> tuple[str, ...]:
    """The glob's tokens: one character each, or ``*``, ``**``, ``?``."""
    if not isinstance(pattern, str):
        raise ConfigurationError(f"allow_spawn patterns are strings, not {pattern!r}")
    what = f"allow_spawn pattern {_quote(pattern)}"
    if len(pattern) > MAX_CLASS_PATH:
        raise ConfigurationError(f"{what} is longer than {MAX_CLASS_PATH} characters")
    if pattern.count(":") != 1:
        raise ConfigurationError(f"{what} must be 'module:QualName', with exactly one ':'")
    if not set(pattern) <= _PATTERN_CHARS:
        raise ConfigurationError(
            f"{what} may hold only ASCII letters, digits, '_', '.', ':' "
            "and the globs '*' (within a segment), '**' (across dots) and '?'"
        )
    if "***" in pattern:
        raise ConfigurationError(f"{what} has '***': write '*' (one segment) or '**' (any depth)")
    for side in pattern.split(":"):
        if not side or "" in side.split("."):
            raise ConfigurationError(f"{what} has an empty module, class name or segment")
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith(_DSTAR, i):
            tokens.append(_DSTAR)
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return tuple(tokens)


def _skip_stars(tokens: tuple[str, ...], states: set[int]) -> set[int]:
    """Add the states reached by letting a ``*``/``**`` match nothing."""
    todo = list(states)
    while todo:
        i = todo.pop()
        if i < len(tokens) and tokens[i] in (_STAR, _DSTAR) and i + 1 not in states:
            states.add(i + 1)
            todo.append(i + 1)
    return states


def _matches(tokens: tuple[str, ...], text: str) -> bool:
    """Whether the glob ``tokens`` matches all of ``text``: O(len(text) * len(tokens))."""
    end = len(tokens)
    states = _skip_stars(tokens, {0})
    for char in text:
        step: set[int] = set()
        for i in states:
            if i == end:
                continue
            token = tokens[i]
            if token == _DSTAR:
                if char != ":":
                    step.add(i)
            elif token == _STAR:
                if char not in ".:":
                    step.add(i)
            elif token == _ONE:
                if char not in ".:":
                    step.add(i + 1)
            elif token == char:
                step.add(i + 1)
        if not step:
            return False
        states = _skip_stars(tokens, step)
    return end in states


class AllowList:
    """The compiled ``allow_spawn`` globs; build it once, ask it per spawn.

    An empty list allows nothing: that is a node's default.
    """

    __slots__ = ("_compiled", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        if isinstance(patterns, str):  # tuple("mod:*") would be 5 bad patterns
            raise ConfigurationError(
                f"allow_spawn takes a list of patterns, not the string {_quote(patterns)}: "
                f"write [{_quote(patterns)}]"
            )
        self.patterns: tuple[str, ...] = tuple(dict.fromkeys(patterns))
        self._compiled = [_compile(p) for p in self.patterns]

    def __repr__(self) -> str:
        return f"AllowList({list(self.patterns)!r})"

    def allows(self, path: str) -> bool:
        """Whether ``path`` is a valid class path that some pattern matches."""
        if _path_problem(path) is not None:
            return False
        return any(_matches(tokens, path) for tokens in self._compiled)


def allowed(path: str, patterns: Iterable[str]) -> bool:
    """``AllowList(patterns).allows(path)``, for a one-off question."""
    return AllowList(patterns).allows(path)


# -------------------------------------------------------------- resolving


def resolve_actor_class(path: object, allow_list: AllowList | Iterable[str]) -> type[Actor]:
    """The ``Actor`` subclass a remote ``Spawn`` names, or ``SpawnRefused``.

    In order: the path's syntax (``validate_class_path``), the allow-list
    (nothing is imported for a path it does not match), the import, the walk
    down the qualname, and the checks that the result is an ``Actor``
    subclass defined right there. Whatever goes wrong (a module that raises
    at import, even ``SystemExit``) becomes ``SpawnRefused`` with the reason:
    a peer's spawn must never take the node down. ``KeyboardInterrupt`` and
    trio's ``Cancelled`` pass through (an import has no checkpoint, so
    ``Cancelled`` cannot be raised inside one anyway).

    The import blocks the calling thread, as any import does.
    """
    from ..actors._actor import Actor  # lazily: remote/ loads without actors/

    module_name, qualname = validate_class_path(path)
    assert isinstance(path, str)
    allow = allow_list if isinstance(allow_list, AllowList) else AllowList(allow_list)
    if not allow.allows(path):
        raise SpawnRefused(
            f"spawning {_quote(path)} is not allowed here: no allow_spawn pattern matches it"
        )
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        raise SpawnRefused(
            f"cannot import {_quote(module_name)} for {_quote(path)}: {_why(exc)}"
        ) from exc
    try:
        target: object = module
        where = module_name
        for part in qualname.split("."):
            # getattr_static runs no code: no module __getattr__, no
            # descriptor, no metaclass property chosen by the peer's path.
            target = inspect.getattr_static(target, part, _MISSING)
            if target is _MISSING:
                raise SpawnRefused(f"{_quote(path)} does not exist: {where} has no {part!r}")
            if not isinstance(target, type):
                raise SpawnRefused(f"{_quote(path)} is a {type(target).__name__}, not a class")
            where = f"{where}{'.' if ':' in where else ':'}{part}"
        assert isinstance(target, type)
        if not issubclass(target, Actor):
            raise SpawnRefused(f"{_quote(path)} is not an Actor subclass")
        if target.__module__ != module_name or target.__qualname__ != qualname:
            raise SpawnRefused(
                f"{_quote(path)} is {target.__module__}:{target.__qualname__}, defined "
                "elsewhere; a class is spawned only by the path where it is defined"
            )
    except SpawnRefused:
        raise
    except Exception as exc:
        raise SpawnRefused(f"cannot resolve {_quote(path)}: {_why(exc)}") from exc
    return target


def _why(exc: BaseException) -> str:
    """``"ImportError: no module named x"``, cut short like ``_cut``."""
    try:
        text = _cut(str(exc))
    except Exception:  # a module's own exception may not even print
        text = "(unprintable)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
