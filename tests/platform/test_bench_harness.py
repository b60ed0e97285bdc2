"""The benchmark harness reads wrk correctly and prints figures beside baselines."""

from __future__ import annotations

import pytest

from stories.bench.harness import Figure, format_table, parse_wrk

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000/bare
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.10ms    2.00ms  40.00ms   90.00%
    Req/Sec     7.90k   300.00     8.50k    70.00%
  Latency Distribution
     50%  750.00us
     75%    9.00ms
     90%   10.00ms
     99%    1.20s
  79000 requests in 10.00s, 11.00MB read
Requests/sec:   7899.50
Transfer/sec:      1.10MB
"""


def test_wrk_output_is_read_in_milliseconds() -> None:
    assert parse_wrk(WRK_OUTPUT) == (7899.5, 0.75, 1200.0)


def test_a_run_with_error_responses_is_refused() -> None:
    with pytest.raises(ValueError, match="errors under load"):
        parse_wrk(WRK_OUTPUT + "  Non-2xx or 3xx responses: 12\n")


def test_the_table_prints_each_row_beside_its_baseline_with_the_target() -> None:
    table = format_table(
        [
            Figure("plumbing", "plain", 1000.0, "req/s", 1.0, 2.0),
            Figure(
                "plumbing", "ours", 850.0, "req/s", 1.2, 2.5, baseline_of="plain", target_ratio=0.8
            ),
            Figure(
                "plumbing",
                "slow",
                500.0,
                "req/s",
                None,
                None,
                baseline_of="plain",
                target_ratio=0.8,
            ),
        ]
    )
    lines = table.splitlines()
    assert "(baseline)" in lines[2]
    assert "0.85x (meets target 0.80)" in lines[3]
    assert "0.50x (MISSES target 0.80)" in lines[4]
