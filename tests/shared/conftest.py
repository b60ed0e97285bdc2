"""Tests of the plumbing in shared/: the app factory, the event bus, events,
logging, settings, telemetry, single flight and the bounded access client. They
build apps of their own on `settings` and `resources` (tests/conftest.py), not
the four services."""
