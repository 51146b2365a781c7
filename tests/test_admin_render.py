"""The CLI's rendering (pure: JSON documents in, lines out) and the admin
address parser, with hypothesis."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trouper
from trouper.observability._cli import (
    message_counts,
    render_members,
    render_ps,
    render_top,
    render_tree,
)
from trouper.observability._config import parse_address

names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=120)
counts = st.integers(0, 10**12)
states = st.sampled_from(["new", "running", "suspended", "stopping"])


@st.composite
def actors(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    children = draw(st.lists(actors(depth + 1), max_size=3)) if depth < 3 else []
    more = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "class": names,
                    "count": counts,
                    "states": st.just({}),
                    "restarts": counts,
                    "mailbox_depth": counts,
                    "mailbox_depth_max": counts,
                }
            ),
            max_size=2,
        )
    )
    return {
        "path": "/" + "/".join(draw(st.lists(names, min_size=1, max_size=4))),
        "uid": 1,
        "name": None,
        "class": draw(names),
        "state": draw(states),
        "restarts": draw(counts),
        "mailbox_depth": draw(counts),
        "children_total": len(children),
        "children": children,
        "more": more,
    }


members = st.fixed_dictionaries(
    {
        "node": names,
        "incarnation": counts,
        "addresses": st.lists(names, max_size=3),
        "status": st.sampled_from(["up", "down", "joining"]),
        "phi": st.none() | st.floats(0, 1e300),
        "rtt_seconds": st.none() | st.floats(0, 1e6),
        "connected": st.booleans(),
    }
)


@settings(max_examples=100, deadline=None)
@given(st.lists(actors(), min_size=1, max_size=2), st.lists(members, min_size=1, max_size=5))
def test_every_line_fits_80_columns(roots: list[dict[str, Any]], cluster: list[Any]) -> None:
    tree = {"node": "n", "roots": roots}
    node = {
        "node": "n" * 100,
        "stats": {"actors": 10**9, "tasks": 10**9, "restarts": 10**9, "dead_letters": 10**9},
    }
    doc = {"node": "n", "members": cluster}
    rates = {r["class"]: 1e9 for r in roots}
    for lines in (
        render_ps(tree, system=True),
        render_tree(tree),
        render_members(doc),
        render_top(node, tree, doc, rates),
    ):
        assert lines and all(len(line) <= 80 for line in lines)


def test_the_tree_draws_aggregates_and_branches() -> None:
    leaf = {"class": "m.W", "state": "running", "restarts": 2, "mailbox_depth": 0}
    tree = {
        "node": "n0",
        "roots": [
            {
                "path": "/user",
                "class": "m.G",
                "state": "running",
                "restarts": 0,
                "mailbox_depth": 3,
                "children": [
                    {**leaf, "path": "/user/a", "children": [], "more": []},
                    {**leaf, "path": "/user/b", "children": [], "more": []},
                ],
                "more": [{"class": "m.W", "count": 98}],
            }
        ],
    }
    assert render_tree(tree) == [
        "node n0",
        "/user (G, running mailbox=3)",
        "├── a (W, running restarts=2)",
        "├── b (W, running restarts=2)",
        "└── … 98 more W",
    ]


def test_message_counts_sum_the_classes_outcomes() -> None:
    text = (
        "# TYPE trouper_messages_total counter\n"
        'trouper_messages_total{actor_class="m.A",outcome="ok"} 5.0\n'
        'trouper_messages_total{actor_class="m.A",outcome="failed"} 2.0\n'
        'trouper_messages_total{actor_class="m.B",outcome="ok"} 1.0\n'
    )
    assert message_counts(text) == {"m.A": 7.0, "m.B": 1.0}


@given(st.sampled_from(["127.0.0.1", "localhost", "::1", "0.0.0.0"]), st.integers(0, 65535))
def test_admin_addresses_parse(host: str, port: int) -> None:
    text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert parse_address(text) == (host, port)
    assert parse_address(f"http://{text}/") == (host, port)


@pytest.mark.parametrize("bad", ["", "localhost", ":9100", "host:", "host:99999", "host:x", 9100])
def test_bad_admin_addresses_are_named(bad: Any) -> None:
    with pytest.raises(trouper.ConfigurationError, match="HOST:PORT"):
        parse_address(bad)
