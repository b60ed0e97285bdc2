"""Request metrics are exported in Prometheus' format with correct histograms."""

from __future__ import annotations

from prometheus_client import generate_latest

from shared.observe.telemetry import Telemetry


def test_request_counts_and_latency_buckets_are_exported() -> None:
    telemetry = Telemetry("sample")
    for seconds in (0.0005, 0.003, 0.003, 2.0, 9.0):
        telemetry.http.observe("GET", "/v1/books/{book_id}", 200, seconds)
    telemetry.http.observe("GET", "/v1/books/{book_id}", 404, 0.001)
    text = generate_latest(telemetry.registry).decode()

    assert 'http_requests_total{method="GET",route="/v1/books/{book_id}",status="200"} 5.0' in text
    assert 'http_requests_total{method="GET",route="/v1/books/{book_id}",status="404"} 1.0' in text
    histogram = (
        'http_request_duration_seconds_bucket{le="%s",method="GET",route="/v1/books/{book_id}"}'
    )
    assert f"{histogram % '0.001'} 2.0" in text  # 0.0005 and the 404's 0.001
    assert f"{histogram % '0.005'} 4.0" in text
    assert f"{histogram % '2.5'} 5.0" in text
    assert f"{histogram % '+Inf'} 6.0" in text
    assert (
        'http_request_duration_seconds_count{method="GET",route="/v1/books/{book_id}"} 6.0' in text
    )
