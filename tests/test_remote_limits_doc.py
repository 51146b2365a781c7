"""docs/remote.md lists every limit of ``RemoteConfig`` with its default.

The "Limits" table (option | default | what it bounds | what happens at the
limit) must name exactly the limit fields of ``trouper.remote.RemoteConfig``
(every attrs field but the few listed in ``NOT_LIMITS``), each with the
field's own default; so must any option the "Network options" table names.
A new option is either documented as a limit or declared not to be one here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import attrs
import pytest

from trouper.remote import REMOTE_OPTIONS, RemoteConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "remote.md"

#: Fields that are not limits a node holds its peers to: who it is, where it
#: listens and dials, whom it lets spawn, and how it detects failures.
NOT_LIMITS = frozenset(
    {
        "cookie",
        "listen",
        "seeds",
        "tls",
        "allow_spawn",
        "heartbeat_interval",
        "acceptable_pause",
        "phi_threshold",
        "down_after",
        "gossip_every",
    }
)
FIELDS = {field.name: field.default for field in attrs.fields(RemoteConfig)}
LIMITS = {name: value for name, value in FIELDS.items() if name not in NOT_LIMITS}
UNITS = {"KiB": 1024, "MiB": 1024 * 1024}


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"docs/remote.md has no '## {title}' section"
    return match.group(1)


def table(body: str) -> list[list[str]]:
    """The first Markdown table in ``body``: its header, then its rows."""
    lines = [line.strip() for line in body.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    assert set("".join(rows[1])) <= set("-: "), "the second row must be the separator"
    return [rows[0], *rows[2:]]


def value(cell: str) -> object:
    """A default as the docs write it: a Python literal, or ``N KiB``/``N MiB``."""
    text = cell.strip("`").strip()
    number, _, unit = text.partition(" ")
    if unit in UNITS:
        return int(number) * UNITS[unit]
    return ast.literal_eval(text)


def documented(title: str) -> dict[str, object]:
    rows = table(section(DOC.read_text(encoding="utf-8"), title))
    options: dict[str, object] = {}
    for row in rows[1:]:
        name = row[0].strip("`")
        assert name not in options, f"{name} is listed twice under {title!r}"
        options[name] = value(row[1])
    return options


def test_the_limits_table_has_its_columns_filled_in() -> None:
    header, *rows = table(section(DOC.read_text(encoding="utf-8"), "Limits"))
    assert header == ["option", "default", "what it bounds", "what happens at the limit"]
    for row in rows:
        assert len(row) == 4 and all(row), row


def test_the_limits_table_lists_every_limit_with_its_default() -> None:
    listed = documented("Limits")
    missing = sorted(LIMITS.keys() - listed.keys())
    unknown = sorted(listed.keys() - LIMITS.keys())
    assert not missing, f"limits of RemoteConfig missing from docs/remote.md: {missing}"
    assert not unknown, f"docs/remote.md lists limits RemoteConfig does not have: {unknown}"
    for name, default in LIMITS.items():
        shown = listed[name]
        assert shown == default and type(shown) is type(default), (name, shown, default)


@pytest.mark.parametrize("title", ["Network options of `open_node`", "Limits"])
def test_every_documented_option_is_a_real_option(title: str) -> None:
    for name, shown in documented(title).items():
        assert name in FIELDS, f"{title!r} documents {name!r}, which RemoteConfig lacks"
        assert name == "cookie" or name in REMOTE_OPTIONS, name
        default = FIELDS[name]
        if name != "cookie":  # required in RemoteConfig, None (no network) in open_node
            assert shown == default, (name, shown, default)


def test_the_exemptions_are_real_fields() -> None:
    assert not NOT_LIMITS - FIELDS.keys(), sorted(NOT_LIMITS - FIELDS.keys())


def test_the_parser_reads_what_the_docs_write() -> None:
    assert [value(c) for c in ("`16 MiB`", "`64 KiB`", "`10000`", "`15.0`", "`None`")] == [
        16 * 1024 * 1024,
        64 * 1024,
        10_000,
        15.0,
        None,
    ]
    body = "intro\n\n| a | b |\n| --- | --- |\n| `x` | `1` |\n\nafter\n| not | this |\n"
    assert table(body) == [["a", "b"], ["`x`", "`1`"]]
