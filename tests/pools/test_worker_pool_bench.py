"""`make bench`'s worker_pool_spike case, shrunk: both sides measure, one JSON line."""

from pathlib import Path

from bench_run import KEYS, quick_case


def test_worker_pool_spike_prints_its_json_line(tmp_path: Path) -> None:
    (line,) = quick_case("worker_pool_spike", tmp_path)
    assert set(line) >= KEYS | {"target"}, line
    assert line["name"] == "worker_pool_spike" and line["unit"] == "ms p99"
    assert line["value"] > 0 and line["baseline_value"] > 0, line
    assert line["target"] == "<= 0.3"
