"""`stories recommend batch` (#42) on reading logs written here, and `stories bench
recommendations` on the demo library's month: the recommender beats the baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stories.bench.recommendations import bench_recommendations
from stories.cli import main

LOG = """reader,book,at
ana,lion,2026-01-01T10:00:00Z
ana,zebra,2026-01-02T10:00:00+00:00
ben,lion,2026-01-01T09:00:00Z
ben,zebra,2026-01-03T10:00:00Z
ben,hippo,2026-01-04T10:00:00Z
cai,giraffe,1767261600
cai,parrot,1767261700
dan,lion,2026-01-05
"""


def run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], log: str, *more: str
) -> tuple[int, str, str]:
    (tmp_path / "reads.csv").write_text(log)
    (tmp_path / "readers.txt").write_text("reader\nana\ndan\nnobody\n")
    code = main([
        "recommend", "batch", "--interactions", str(tmp_path / "reads.csv"),
        "--readers", str(tmp_path / "readers.txt"), *more,
    ])  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


def test_one_line_per_reader_best_first_without_what_they_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(tmp_path, capsys, LOG, "-k", "2")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["reader"] for line in lines] == ["ana", "dan", "nobody"]
    ana, dan, nobody = (line["books"] for line in lines)
    assert ana[0] == "hippo", "ben read hippo after both of ana's"
    assert "lion" not in ana
    assert "zebra" not in ana
    assert dan[0] == "zebra", "lion readers went on to zebra"
    assert len(nobody) == 2, "a reader with no reads gets the most read"
    assert nobody[0] == "lion"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("ana,lion", "expected reader,book,at[,completed], got 2 fields"),
        ("ana,lion,yesterday", "'yesterday' is neither RFC 3339 nor seconds since the epoch"),
        (",lion,2026-01-01", "an empty reader or book id"),
        ("ana,lion,2026-01-01,maybe", "completed must be true or false"),
    ],
)
def test_a_malformed_log_is_refused_with_its_line_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, says: str
) -> None:
    code, out, err = run(tmp_path, capsys, LOG + line + "\n")
    assert code == 2
    assert out == ""
    assert f"reads.csv:10: {says}" in err


def test_the_recommender_beats_the_most_read_baseline_on_the_demo_month() -> None:
    figures = {f.row: f for f in bench_recommendations()}
    for metric in ("HR@10", "NDCG@10"):
        baseline = figures[f"most read (baseline): {metric}"]
        ours = figures[f"the recommender, as the service runs it: {metric}"]
        assert ours.baseline_of == baseline.row
        assert ours.throughput > baseline.throughput
    refit = next(f for f in figures.values() if f.row.startswith("refit:"))
    assert refit.unit == "ms"
