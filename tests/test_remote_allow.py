"""trouper.remote._allow: the allow-list for remote spawns, as an attacker tries it.

Pure: no node, no trio. The class paths come from the network in real life,
so the hostile ones are the point: each must be refused with SpawnRefused
naming the problem, and nothing may be imported for a path the list refuses.
"""

from __future__ import annotations

import re
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trouper
from trouper.remote._allow import (
    MAX_CLASS_PATH,
    AllowList,
    _compile,
    _matches,
    allowed,
    resolve_actor_class,
    validate_class_path,
)

MODULES = {
    "allowfix_mod.py": """
        import os

        import trouper
        from trouper import Actor
        from allowfix_other import Imported

        class Worker(trouper.Actor):
            class Inner(trouper.Actor):
                pass

            class Plain:
                pass

        class Outer:
            class Inner(trouper.Actor):
                pass

        class NotActor:
            pass

        def function():
            pass

        Alias = Worker
        nothing = None

        def __getattr__(name):
            raise RuntimeError("a module __getattr__ must never run")
    """,
    "allowfix_other.py": """
        import trouper

        class Imported(trouper.Actor):
            pass
    """,
    "allowfix_side.py": """
        import allowfix_log
        allowfix_log.imported.append(__name__)

        import trouper

        class Worker(trouper.Actor):
            pass
    """,
    "allowfix_log.py": "imported = []\n",
    "allowfix_boom.py": "raise RuntimeError('boom at import')\n",
    "allowfix_exit.py": "import sys\nsys.exit(3)\n",
    "allowfix_interrupt.py": "raise KeyboardInterrupt\n",
    "allowfix_pkg/__init__.py": "",
    "allowfix_pkg/sub.py": "import trouper\n\nclass Worker(trouper.Actor):\n    pass\n",
    "allowfix_pkg/deep/__init__.py": "",
    "allowfix_pkg/deep/leaf.py": "import trouper\n\nclass Worker(trouper.Actor):\n    pass\n",
}


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The modules above, importable, and forgotten again after the test."""
    for name, source in MODULES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("allowfix_")]:
        del sys.modules[name]


# ------------------------------------------------------------ class paths


def test_valid_class_paths_split() -> None:
    assert validate_class_path("mod:Worker") == ("mod", "Worker")
    assert validate_class_path("a.b_2.c:Outer.Inner") == ("a.b_2.c", "Outer.Inner")
    assert validate_class_path("__main__:Worker") == ("__main__", "Worker")
    assert validate_class_path("match:_Private") == ("match", "_Private")  # soft keyword


HOSTILE = [
    (".relative:X", "relative module"),
    ("..up:X", "relative module"),
    ("mod:", "no class name after ':'"),
    (":X", "no module before ':'"),
    ("", "exactly one ':'"),
    ("mod", "exactly one ':'"),
    ("mod:X:Y", "exactly one ':'"),
    ("a..b:C", "empty name between dots in its module"),
    ("mod.:C", "empty name between dots in its module"),
    ("mod:A..B", "empty name between dots in its class name"),
    ("mod:A.", "empty name between dots in its class name"),
    ("mod :X", "'mod ', which is not an identifier"),
    ("mod:X\x00", "not an identifier"),
    ("1mod:X", "not an identifier"),
    ("mod:Outer.<locals>.X", "'<locals>', which is not an identifier"),
    ("mod:**", "not an identifier"),
    ("**:*", "not an identifier"),
    ("os/path:X", "not an identifier"),
    ("class:X", "keyword 'class'"),
    ("mod:None", "keyword 'None'"),
    ("pkg.__init__:X", "dunder name '__init__' in its module"),
    ("pkg.__main__:X", "dunder name '__main__' in its module"),
    ("mod:Worker.__base__", "dunder name '__base__' in its class name"),
    ("mod:__class__", "dunder name '__class__'"),
    ("modé:X", "non-ASCII name 'modé'"),
    ("mod:Wörker", "non-ASCII name 'Wörker'"),
    ("\uff4dod:X", "non-ASCII"),  # a fullwidth m, which Python source folds to "mod"
    ("mod:\u212a", "non-ASCII"),  # KELVIN SIGN, folded to K in source
    ("a" * MAX_CLASS_PATH + ":X", f"characters long (at most {MAX_CLASS_PATH})"),
]


@pytest.mark.parametrize(("path", "reason"), HOSTILE, ids=[repr(p[:40]) for p, _ in HOSTILE])
def test_hostile_paths_are_refused_by_name(path: str, reason: str) -> None:
    with pytest.raises(trouper.SpawnRefused) as info:
        validate_class_path(path)
    message = str(info.value)
    assert reason in message
    assert message.startswith(f"refused class path {repr(path)[:40]}")
    assert len(message) < 400  # a 1 MB path does not make a 1 MB error
    # However wide the allow-list, such a path is neither allowed nor resolved.
    assert not allowed(path, ["**:**"])
    with pytest.raises(trouper.SpawnRefused, match="refused class path"):
        resolve_actor_class(path, ["**:**"])


@pytest.mark.parametrize("path", [None, 3, b"mod:X", ["mod", "X"]], ids=repr)
def test_a_path_must_be_a_string(path: object) -> None:
    with pytest.raises(trouper.SpawnRefused, match=r"it is of type .*, not a string"):
        validate_class_path(path)
    assert not AllowList(["**:**"]).allows(path)  # type: ignore[arg-type]


def test_a_megabyte_path_is_quoted_short() -> None:
    with pytest.raises(trouper.SpawnRefused) as info:
        resolve_actor_class("m" * 2**20 + ":X", ["**:*"])
    assert len(str(info.value)) < 300


@settings(max_examples=500, derandomize=True)
@given(st.text(alphabet=st.sampled_from("ab_1.:*? é\x00<>"), max_size=20) | st.text(max_size=20))
def test_any_text_is_split_or_refused(path: str) -> None:
    try:
        module, qualname = validate_class_path(path)
    except trouper.SpawnRefused:
        assert not AllowList(["**:**"]).allows(path)
        return
    assert f"{module}:{qualname}" == path
    for part in [*module.split("."), *qualname.split(".")]:
        assert part.isascii() and part.isidentifier()


# ---------------------------------------------------------------- globs

GLOBS = [
    ("mod:*", "mod:Worker", True),
    ("mod:*", "mod:Outer.Inner", False),  # * stops at dots
    ("mod:*", "mod:trouper.Actor", False),  # what fnmatch let through
    ("mod:*", "other:Worker", False),
    ("mod:*", "mod.sub:Worker", False),
    ("mod:**", "mod:Outer.Inner", True),
    ("mod:**", "mod:a.b.c", True),
    ("mod:**", "mod.sub:X", False),  # ** does not cross the ':'
    ("mod.*:X", "mod.sub:X", True),
    ("mod.*:X", "mod.a.b:X", False),
    ("mod.*:X", "mod:X", False),  # the dot is literal
    ("mod.**:X", "mod.a.b:X", True),
    ("mod.**:X", "mod:X", False),
    ("**:*", "any.deep.module:X", True),
    ("**:*", "mod:A.B", False),
    ("*:*", "mod:X", True),
    ("*:*", "a.b:X", False),
    ("mod:W?rker", "mod:Worker", True),
    ("mod:W?rker", "mod:Wrker", False),
    ("mod:Work*", "mod:Worker", True),
    ("mod:Work*", "mod:Work", True),
    ("mod:Work*", "mod:Wor", False),
    ("mod:*Actor*", "mod:MyActorX", True),
    ("mod:*Actor*", "mod:My.ActorX", False),
    ("m*d:X", "mod:X", True),
    ("m*d:X", "m.d:X", False),
    ("mod:X", "mod:X", True),
    ("mod:X", "mod:XY", False),
    ("mod:X", "mod:X.Y", False),
    ("a.**.b:X", "a.x.y.b:X", True),
    ("a.**.b:X", "a.b:X", False),
    ("mod:*", "mod:", False),  # not a valid path, whatever the glob says
    ("**:**", ".rel:X", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), GLOBS)
def test_glob_semantics(pattern: str, path: str, expected: bool) -> None:
    assert allowed(path, [pattern]) is expected
    assert AllowList(["zzz:Nothing", pattern]).allows(path) is expected


def test_an_empty_list_allows_nothing() -> None:
    assert not AllowList([]).allows("mod:X")
    assert not allowed("mod:X", ())
    assert AllowList(["a:X", "a:X", "b:*"]).patterns == ("a:X", "b:*")
    assert repr(AllowList(["a:X"])) == "AllowList(['a:X'])"


def _reference(pattern: str) -> re.Pattern[str]:
    """The same glob as a regular expression: right, but exponential at scale."""
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    table = {"**": "[^:]*", "*": "[^.:]*", "?": "[^.:]"}
    return re.compile("".join(table.get(p, re.escape(p)) for p in parts))


glob_side = st.lists(st.sampled_from(["a", "b", ".", "*", "**", "?"]), max_size=6).map("".join)
path_side = st.text(alphabet="ab.", max_size=8)


@settings(max_examples=1000, derandomize=True)
@given(pattern=st.tuples(glob_side, glob_side), path=st.tuples(path_side, path_side))
def test_matcher_agrees_with_a_regex(pattern: tuple[str, str], path: tuple[str, str]) -> None:
    glob = ":".join(pattern)
    while "***" in glob:  # refused in real patterns: ambiguous
        glob = glob.replace("***", "**")
    text = ":".join(path)
    tokens = tuple(re.findall(r"\*\*|.", glob))
    expected = _reference(glob).fullmatch(text) is not None
    assert _matches(tokens, text) is expected


def test_matching_is_linear_for_a_hostile_path() -> None:
    # A backtracking regex needs about n**5 steps for this pair; the NFA walk
    # needs len(path) * len(pattern).
    allow = AllowList(["**.**.**.**.**:*", "*a*a*a*a*a*a*a*b:X"])
    path = ".".join(["a"] * 240) + ":X.Y"
    started = time.perf_counter()
    assert not allow.allows(path)
    assert not allow.allows("a" * 500 + ":X")
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("mod", "exactly one ':'"),
        ("a:b:c", "exactly one ':'"),
        ("", "exactly one ':'"),
        (":X", "empty module, class name or segment"),
        ("mod:", "empty module, class name or segment"),
        ("mod.:X", "empty module, class name or segment"),
        (".mod:X", "empty module, class name or segment"),
        ("mod:[AB]", "may hold only ASCII letters"),
        ("mod:Wörker", "may hold only ASCII letters"),
        ("mod :X", "may hold only ASCII letters"),
        ("mod:***", "'***'"),
        ("m" * 600 + ":X", "longer than 512"),
    ],
)
def test_bad_patterns_are_configuration_errors(pattern: str, message: str) -> None:
    with pytest.raises(trouper.ConfigurationError, match=re.escape(message)) as info:
        AllowList([pattern])
    assert "allow_spawn pattern" in str(info.value)
    assert repr(pattern[:50])[:-1] in str(info.value)


def test_patterns_must_be_a_list_of_strings() -> None:
    with pytest.raises(trouper.ConfigurationError, match=r"not the string 'mod:\*': write"):
        AllowList("mod:*")
    with pytest.raises(trouper.ConfigurationError, match="patterns are strings, not 3"):
        AllowList([3])  # type: ignore[list-item]


def test_compile_tokens() -> None:
    assert _compile("a.**:*?") == ("a", ".", "**", ":", "*", "?")


# ------------------------------------------------------------ resolving


def test_resolves_a_class_defined_in_the_module(modules: Path) -> None:
    cls = resolve_actor_class("allowfix_mod:Worker", ["allowfix_mod:*"])
    assert cls.__name__ == "Worker" and issubclass(cls, trouper.Actor)
    assert cls.__module__ == "allowfix_mod"
    allow = AllowList(["allowfix_mod:**"])
    assert resolve_actor_class("allowfix_mod:Outer.Inner", allow).__qualname__ == "Outer.Inner"
    assert resolve_actor_class("allowfix_mod:Worker.Inner", allow).__qualname__ == "Worker.Inner"


def test_resolves_in_packages(modules: Path) -> None:
    one_level = AllowList(["allowfix_pkg.*:*"])
    assert resolve_actor_class("allowfix_pkg.sub:Worker", one_level).__module__ == (
        "allowfix_pkg.sub"
    )
    with pytest.raises(trouper.SpawnRefused, match="no allow_spawn pattern"):
        resolve_actor_class("allowfix_pkg.deep.leaf:Worker", one_level)
    cls = resolve_actor_class("allowfix_pkg.deep.leaf:Worker", ["allowfix_pkg.**:*"])
    assert cls.__module__ == "allowfix_pkg.deep.leaf"


@pytest.mark.parametrize(
    ("path", "patterns", "reason"),
    [
        # A name the module imports is not the module's to offer.
        ("allowfix_mod:Actor", ["allowfix_mod:*"], "is trouper.actors._actor:Actor, defined"),
        ("allowfix_mod:Imported", ["allowfix_mod:*"], "is allowfix_other:Imported, defined"),
        ("allowfix_mod:Alias", ["allowfix_mod:*"], "is allowfix_mod:Worker, defined"),
        # * stops at dots; ** goes through, but only to classes.
        ("allowfix_mod:trouper.Actor", ["allowfix_mod:*"], "no allow_spawn pattern matches"),
        ("allowfix_mod:trouper.Actor", ["allowfix_mod:**"], "is a module, not a class"),
        ("allowfix_mod:os.path", ["allowfix_mod:**"], "is a module, not a class"),
        ("allowfix_mod:Outer.Inner", ["allowfix_mod:*"], "no allow_spawn pattern matches"),
        ("allowfix_mod:NotActor", ["allowfix_mod:*"], "is not an Actor subclass"),
        ("allowfix_mod:Outer", ["allowfix_mod:*"], "is not an Actor subclass"),
        ("allowfix_mod:Worker.Plain", ["allowfix_mod:**"], "is not an Actor subclass"),
        ("allowfix_mod:function", ["allowfix_mod:*"], "is a function, not a class"),
        ("allowfix_mod:nothing", ["allowfix_mod:*"], "is a NoneType, not a class"),
        # No module __getattr__ runs for a missing name (it would raise RuntimeError).
        ("allowfix_mod:Missing", ["allowfix_mod:*"], "does not exist: allowfix_mod has no"),
        ("allowfix_mod:Worker.Nope", ["allowfix_mod:**"], "allowfix_mod:Worker has no 'Nope'"),
        ("allowfix_mod:Worker.mro", ["allowfix_mod:**"], "not a class"),
        ("os:system", ["**:*"], "not a class"),
        ("os:path", ["**:*"], "is a module, not a class"),
        ("allowfix_nope:X", ["allowfix_*:*"], "ModuleNotFoundError"),
        ("allowfix_nope.sub:X", ["**:*"], "ModuleNotFoundError"),
        # (importlib itself asks the module for __path__: still only a refusal)
        ("allowfix_mod.sub:X", ["**:*"], "cannot import 'allowfix_mod.sub'"),
        ("allowfix_boom:X", ["allowfix_boom:*"], "RuntimeError: boom at import"),
        ("allowfix_exit:X", ["allowfix_exit:*"], "SystemExit: 3"),
        ("allowfix_mod:Worker", [], "no allow_spawn pattern matches"),
    ],
)
def test_refusals_name_the_reason(
    modules: Path, path: str, patterns: list[str], reason: str
) -> None:
    with pytest.raises(trouper.SpawnRefused) as info:
        resolve_actor_class(path, patterns)
    assert reason in str(info.value)
    assert repr(path) in str(info.value)


def test_nothing_is_imported_for_a_refused_path(modules: Path) -> None:
    import allowfix_log  # type: ignore[import-not-found]

    for patterns in ([], ["allowfix_side:Other"], ["allowfix_sid?:*.*"], ["other:*"]):
        with pytest.raises(trouper.SpawnRefused, match="no allow_spawn pattern"):
            resolve_actor_class("allowfix_side:Worker", patterns)
    assert "allowfix_side" not in sys.modules
    assert allowfix_log.imported == []
    resolve_actor_class("allowfix_side:Worker", ["allowfix_side:*"])
    assert allowfix_log.imported == ["allowfix_side"]


def test_an_import_error_is_chained(modules: Path) -> None:
    with pytest.raises(trouper.SpawnRefused) as info:
        resolve_actor_class("allowfix_boom:X", ["allowfix_boom:X"])
    assert isinstance(info.value.__cause__, RuntimeError)


def test_keyboard_interrupt_is_never_swallowed(modules: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        resolve_actor_class("allowfix_interrupt:X", ["allowfix_interrupt:*"])


def test_the_actor_base_itself_only_where_it_is_defined() -> None:
    # "**:*" is as wide as a list gets: still nothing but Actors defined where named.
    allow = AllowList(["**:*"])
    assert resolve_actor_class("trouper.actors._actor:Actor", allow) is trouper.Actor
    with pytest.raises(trouper.SpawnRefused, match="defined elsewhere"):
        resolve_actor_class("trouper:Actor", allow)
