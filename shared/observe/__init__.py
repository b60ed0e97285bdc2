"""Seeing what runs: traces (setup, sampling, propagation) and telemetry."""
