"""The store benchmark case runs (tiny) and prints its JSON line, as `make bench` does."""

from pathlib import Path

from bench_run import KEYS, quick_case


def test_store_shared_append_smoke(tmp_path: Path) -> None:
    (line,) = quick_case("store_shared_append", tmp_path)
    assert line["name"] == "store_shared_append" and set(line) >= KEYS
    assert line["value"] > 0 and line["baseline_value"] > 0
