"""The metrics service: educational and workflow metrics from every platform event."""
