"""A service as a whole: its app factory, health, idempotency, logging, migrations, its
processes."""
