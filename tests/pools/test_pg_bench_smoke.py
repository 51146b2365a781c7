"""The pool_fetchval benchmark runs end to end (tiny size) and prints its JSON line."""

from pathlib import Path

from bench_run import quick_case


def test_pool_fetchval_bench_smoke(tmp_path: Path) -> None:
    (line,) = quick_case("pool_fetchval", tmp_path)
    assert line["name"] == "pool_fetchval" and line["unit"] == "calls/s"
    assert line["value"] > 0 and line["baseline_value"] > 0
    assert abs(line["ratio"] - line["value"] / line["baseline_value"]) < 0.01 * line["ratio"]
