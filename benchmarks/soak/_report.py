"""What a soak run prints: one JSON line of figures (stdout) and a summary to read (stderr)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from ._check import CHECKS, Verdict
from ._journal import LAG_REPORTED

SHOWN = 8  # violations listed per check; the JSON line counts all of them

RULES = {
    "false-down": "no node declared down while alive",
    "exactly-once": "every acknowledged message arrived exactly once; nothing twice",
    "order": "per sender loop and actor, messages arrived in order",
    "progress": "steady asks to a live node always answered within the stall bound",
    "hang": "no ask outlived its timeout; every bound of the driver held",
    "memory": "the seed node's RSS stayed flat after warm-up",
    "shutdown": "every SIGTERM ended its node, with code 0, within the bound",
    "crash": "no node process exited by itself",
    "membership": "every node saw every live node up (at startup and after the run)",
}


def figures(verdict: Verdict) -> dict[str, Any]:
    """The one JSON line: what happened, in numbers."""
    outcome, config = verdict.outcome, verdict.outcome.config
    kinds = Counter(life.end_kind for life in outcome.lives)
    counts = Counter(v.check for v in verdict.violations)
    shutdown = {
        life.node: {
            "code": life.exit_code,
            "seconds": None if life.exited is None else round(life.exited - life.ended, 2),
        }
        for life in outcome.lives
        if life.end_kind == "stop" and life.ended is not None
    }
    return {
        "name": "soak",
        "ok": verdict.ok,
        "failed_checks": sorted(counts),
        "violations": dict(sorted(counts.items())),
        "seed": config.seed,
        "duration_s": config.duration,
        "wall_s": round(outcome.finished - outcome.began, 1),
        "processes": len(outcome.lives),
        "kills": kinds["kill"],
        "graceful_restarts": kinds["term"],
        "crashes": kinds["crash"],
        **verdict.figures,
        "converged_after_s": None
        if outcome.converged_after is None
        else round(outcome.converged_after, 2),
        "shutdown": shutdown,
        "detection": config.workload.node_options(),
        "loadavg_1m": list(outcome.loadavg),
        "workdir": str(outcome.workdir),
    }


def summary(verdict: Verdict) -> str:
    """Each check, passed or failed, and for a failure what, where and when."""
    outcome, fig = verdict.outcome, verdict.figures
    lines = [
        f"soak: {outcome.config.duration:g}s, seed {outcome.config.seed}, "
        f"{len(outcome.lives)} node processes; journals and logs in {outcome.workdir}",
        f"  asks answered {fig.get('asks_answered', 0)}, tells sent {fig.get('tells_sent', 0)}"
        f" (acknowledged {fig.get('tells_acked', 0)}), arrivals {fig.get('messages_arrived', 0)}"
        f", send failures {fig.get('send_failures', {})}",
        f"  downs after a kill or stop {fig.get('downs_expected', 0)}, max ask gap "
        f"{fig.get('max_ask_gap_s')}s, max event-loop lag "
        f"{fig.get('max_loop_lag_s')} (0: under {LAG_REPORTED}s), "
        f"RSS growth {fig.get('rss', {}).get('growth_mib')} MiB",
        "  chaos: "
        + (
            ", ".join(f"{label} {kind} at {t:+.1f}s" for t, label, kind in fig.get("chaos", []))
            or "none"
        ),
    ]
    for check in CHECKS:
        failed = sorted(verdict.failed(check), key=lambda v: (v.at is None, v.at or 0.0, v.what))
        lines.append(f"{'FAIL' if failed else 'ok  '} {check}: {RULES[check]}")
        for violation in failed[:SHOWN]:
            when = "" if violation.at is None else f"{violation.at - outcome.began:+.1f}s "
            lines.append(f"       {when}[{violation.node or '-'}] {violation.what}")
        if len(failed) > SHOWN:
            lines.append(f"       ... and {len(failed) - SHOWN} more")
    lines.append(
        "PASSED" if verdict.ok else f"FAILED: {', '.join(figures(verdict)['failed_checks'])}"
    )
    return "\n".join(lines)


def json_line(verdict: Verdict) -> str:
    return json.dumps(figures(verdict), separators=(",", ":"))
