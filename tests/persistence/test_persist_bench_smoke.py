"""The persist_<backend> benchmark runs and prints its JSON line (a tiny run:
tests/test_bench_smoke.py's style; the figures come from ``make bench``)."""

from pathlib import Path

from bench_run import KEYS, quick_case


def test_persist_bench_prints_its_json_line(tmp_path: Path) -> None:
    lines = quick_case("persist_", tmp_path)
    assert {line["name"] for line in lines} >= {"persist_sqlite"}
    for line in lines:
        assert set(line) >= KEYS | {"target"}, line
        assert line["unit"] == "events/s" and line["target"] == ">= 0.7"
        assert line["value"] > 0 and line["baseline_value"] > 0
