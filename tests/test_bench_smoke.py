"""`make bench` prints one JSON object per case, in the agreed shape."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench_run import quick_case

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"name", "value", "unit", "baseline", "baseline_value", "ratio"}


def test_bench_prints_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "local_", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert {line["name"] for line in lines} >= {"local_tell", "local_ask"}
    for line in lines:
        assert set(line) >= KEYS, line
        assert line["value"] > 0 and line["baseline_value"] > 0
        assert abs(line["ratio"] - line["value"] / line["baseline_value"]) < 0.01 * line["ratio"]
    assert json.loads(out.read_text())


@pytest.mark.parametrize("client", ["lean", "trio"])
def test_bench_chat_measures_both_servers(client: str) -> None:
    """`make bench-chat`, shrunk: 40 clients in 2 processes, one short phase a
    server, with either load generator."""
    argv = [sys.executable, "-m", "benchmarks.chat", "--connections", "40", "--rooms", "4"]
    argv += ["--procs", "2", "--rate", "20", "--duration", "1", "--grace", "1", "--no-sweep"]
    argv += ["--client", client]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = {json.loads(line)["name"]: json.loads(line) for line in proc.stdout.splitlines()}
    held = lines["chat_connections_held"]
    assert (held["value"], held["baseline_value"], held["meets_target"]) == (40, 40, True)
    fixed = lines["chat_p99_fixed_rate"]
    for kind in ("trouper", "baseline"):
        # 20 messages, each to the 10 members of its room
        assert fixed[f"{kind}_expected"] == fixed[f"{kind}_deliveries"] == 200, fixed
        assert (fixed[f"{kind}_lost"], fixed[f"{kind}_duplicated"]) == (0, 0), fixed
    assert fixed["value"] > 0 and fixed["baseline_value"] > 0
    assert set(lines["chat_rss_per_connection"]) >= KEYS
    generator = lines["chat_generator_us_per_delivery"]
    # CPU is read from /proc in 10 ms ticks: the lean generator's few ms for
    # 200 deliveries may round to 0 at this size, but it is measured.
    assert generator["client"] == client and generator["value"] is not None
    assert generator["value"] >= 0
    assert lines["chat_server_us_per_delivery"]["value"] > 0


def test_bench_transport_echo_smoke(tmp_path: Path) -> None:
    """`transport_echo_tcp`, shrunk: both sides measured, one JSON line."""
    (line,) = quick_case("transport_echo_tcp", tmp_path)
    assert line["name"] == "transport_echo_tcp" and set(line) >= KEYS
    assert line["value"] > 0 and line["baseline_value"] > 0


def test_bench_http_smoke_runs_every_case() -> None:
    """`make bench-http`, shrunk: the Python client instead of wrk, 1 s phases."""
    argv = [sys.executable, "-m", "benchmarks.http", "--smoke"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = {json.loads(line)["name"]: json.loads(line) for line in proc.stdout.splitlines()}
    assert set(lines) == {
        "http_hello_vs_hypercorn",
        "http_hello_vs_uvicorn",
        "http_users_p99",
        "http_idle_held",
    }
    for name in ("http_hello_vs_hypercorn", "http_hello_vs_uvicorn"):
        line = lines[name]
        assert set(line) >= KEYS, line
        assert line["value"] > 0 and line["baseline_value"] > 0
        assert line["trouper"]["errors"] == line["baseline_detail"]["errors"] == 0
    users = lines["http_users_p99"]
    assert users["errors"] == 0 and users["p50_ms"] is not None and users["value"] > 0
    held = lines["http_idle_held"]
    assert (held["value"], held["opened"]) == (50, 50)


def test_bench_redis_store_append_smoke(tmp_path: Path) -> None:
    """The redis_store_append case, shrunk: both sides start their own redis-server."""
    (line,) = quick_case("redis_store_append", tmp_path)
    assert line["name"] == "redis_store_append" and set(line) >= KEYS
    assert line["value"] > 0 and line["baseline_value"] > 0
