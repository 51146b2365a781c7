"""``trouper ps``, ``tree``, ``members`` and ``top``: an admin endpoint's
JSON as text for a terminal (80 columns), fetched with httpx.

The rendering functions are pure (documents in, lines out); ``run_client``
does the fetching. The CLI runs no Trio loop, so a plain blocking client is
right here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError

WIDTH = 80
CLEAR = "\x1b[H\x1b[2J"


def short_class(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _fit(line: str, width: int = WIDTH) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def _flatten(entry: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield entry
    for child in entry["children"]:
        yield from _flatten(child)


def render_ps(doc: dict[str, Any], system: bool = False) -> list[str]:
    """One line per actor: path, class, state, restarts, mailbox depth."""
    lines = [f"{'PATH':<34} {'CLASS':<18} {'STATE':<9} {'RESTARTS':>8} {'MAILBOX':>7}"]
    for root in doc["roots"]:
        if root["path"] == "/system" and not system:
            continue
        for entry in _flatten(root):
            lines.append(
                f"{_fit(entry['path'], 34):<34} {_fit(short_class(entry['class']), 18):<18} "
                f"{entry['state']:<9} {entry['restarts']:>8} {entry['mailbox_depth']:>7}"
            )
            for group in entry["more"]:
                more = f"  … {group['count']} more under {entry['path']}"
                lines.append(f"{_fit(more, 34):<34} {_fit(short_class(group['class']), 18)}")
    return [_fit(line) for line in lines]


def render_tree(doc: dict[str, Any]) -> list[str]:
    """The supervision tree, drawn with box characters."""
    lines = [f"node {doc['node']}"]

    def label(entry: dict[str, Any], name: str) -> str:
        extra = f" restarts={entry['restarts']}" if entry["restarts"] else ""
        depth = f" mailbox={entry['mailbox_depth']}" if entry["mailbox_depth"] else ""
        return f"{name} ({short_class(entry['class'])}, {entry['state']}{extra}{depth})"

    def walk(entry: dict[str, Any], prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        name = entry["path"] if top else entry["path"].rsplit("/", 1)[-1]
        lines.append(_fit(prefix + branch + label(entry, name)))
        inner = prefix + ("" if top else ("    " if last else "│   "))
        items: list[Any] = [*entry["children"], *entry["more"]]
        for i, item in enumerate(items):
            end = i == len(items) - 1
            if "path" in item:
                walk(item, inner, end, False)
            else:
                text = f"… {item['count']} more {short_class(item['class'])}"
                lines.append(_fit(inner + ("└── " if end else "├── ") + text))

    for root in doc["roots"]:
        walk(root, "", True, True)
    return lines


def render_members(doc: dict[str, Any]) -> list[str]:
    lines = [f"{'NODE':<24} {'STATUS':<8} {'PHI':>7} {'RTT ms':>8}  ADDRESSES"]
    for m in doc["members"]:
        phi = "-" if m["phi"] is None else f"{m['phi']:.2f}"
        rtt = "-" if m["rtt_seconds"] is None else f"{m['rtt_seconds'] * 1000:.1f}"
        lines.append(
            f"{_fit(m['node'], 24):<24} {m['status']:<8} {phi:>7} {rtt:>8}  "
            + " ".join(m["addresses"])
        )
    return [_fit(line) for line in lines]


def message_counts(metrics: str) -> dict[str, float]:
    """``trouper_messages_total`` summed per actor class, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        if family.name != "trouper_messages":
            continue
        for sample in family.samples:
            if sample.name == "trouper_messages_total":
                cls = sample.labels.get("actor_class", "?")
                counts[cls] = counts.get(cls, 0.0) + sample.value
    return counts


def render_top(
    node: dict[str, Any],
    tree: dict[str, Any],
    cluster: dict[str, Any],
    rates: dict[str, float],
    rows: int = 15,
) -> list[str]:
    """A frame of ``trouper top``: the node, then actor classes by activity."""
    stats = node["stats"]
    up = sum(1 for m in cluster["members"] if m["status"] == "up")
    lines = [
        f"trouper top - node {node['node']}  {time.strftime('%H:%M:%S')}",
        f"actors {stats['actors']}  tasks {stats['tasks']}  restarts {stats['restarts']}  "
        f"dead letters {stats['dead_letters']}  members up {up}/{len(cluster['members'])}",
        "",
        f"{'CLASS':<30} {'ACTORS':>7} {'MSG/S':>9} {'MAILBOX':>8} {'MAX':>6} {'RESTARTS':>8}",
    ]
    classes: dict[str, dict[str, Any]] = {}
    for root in tree["roots"]:
        for entry in _flatten(root):
            groups = [
                {
                    "class": entry["class"],
                    "count": 1,
                    "restarts": entry["restarts"],
                    "mailbox_depth": entry["mailbox_depth"],
                    "mailbox_depth_max": entry["mailbox_depth"],
                },
                *entry["more"],
            ]
            for g in groups:
                c = classes.setdefault(
                    g["class"], {"count": 0, "restarts": 0, "depth": 0, "max": 0}
                )
                c["count"] += g["count"]
                c["restarts"] += g["restarts"]
                c["depth"] += g["mailbox_depth"]
                c["max"] = max(c["max"], g["mailbox_depth_max"])
    order = sorted(classes.items(), key=lambda kv: (-rates.get(kv[0], 0.0), -kv[1]["depth"], kv[0]))
    for name, c in order[:rows]:
        lines.append(
            f"{_fit(short_class(name), 30):<30} {c['count']:>7} {rates.get(name, 0.0):>9.1f} "
            f"{c['depth']:>8} {c['max']:>6} {c['restarts']:>8}"
        )
    return [_fit(line) for line in lines]


class AdminClient:
    """A blocking client of one admin endpoint."""

    def __init__(self, url: str, token_file: Path | None, timeout: float = 10.0) -> None:
        try:
            import httpx
        except ImportError:
            raise ConfigurationError(
                "the admin commands need httpx: pip install 'trouper[admin]'"
            ) from None

        if "://" not in url:
            url = "http://" + url
        headers = {}
        if token_file is not None:
            try:
                token = token_file.read_text().strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read the token file {token_file}: {exc.strerror}"
                ) from None
            headers["authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def get(self, endpoint: str, **params: Any) -> Any:
        import httpx

        query = {k: v for k, v in params.items() if v is not None}
        try:
            reply = self._http.get(endpoint, params=query)
        except httpx.HTTPError as exc:
            raise ConfigurationError(
                f"cannot reach the admin endpoint at {self.url}: {exc}"
            ) from None
        if endpoint == "/metrics":
            return reply.text
        body = reply.json()
        if reply.status_code != 200:
            raise ConfigurationError(f"{endpoint}: {body.get('message', reply.status_code)}")
        return body


def run_client(command: str, args: Any, out: Callable[[str], None] = print) -> None:
    client = AdminClient(args.admin, args.token_file)
    node = getattr(args, "node", None)
    if command == "ps":
        out("\n".join(render_ps(client.get("/api/tree", node=node), system=args.system)))
    elif command == "tree":
        doc = client.get("/api/tree", node=node, path=args.path, depth=args.depth)
        out("\n".join(render_tree(doc)))
    elif command == "members":
        out("\n".join(render_members(client.get("/api/cluster", node=node))))
    elif command == "top":
        _top(client, node, args.interval, args.iterations)


def _top(client: AdminClient, node: str | None, interval: float, iterations: int) -> None:
    previous: tuple[float, dict[str, float]] | None = None
    done = 0
    while iterations == 0 or done < iterations:
        counts = message_counts(client.get("/metrics", node=node))
        now = time.monotonic()
        rates: dict[str, float] = {}
        if previous is not None and now > previous[0]:
            rates = {
                k: (v - previous[1].get(k, 0.0)) / (now - previous[0]) for k, v in counts.items()
            }
        previous = (now, counts)
        frame = render_top(
            client.get("/api/node", node=node),
            client.get("/api/tree", node=node),
            client.get("/api/cluster", node=node),
            rates,
        )
        # Refresh in place: home the cursor and clear, then the new frame.
        sys.stdout.write(CLEAR + "\n".join(frame) + "\n")
        sys.stdout.flush()
        done += 1
        if iterations == 0 or done < iterations:
            time.sleep(interval)
