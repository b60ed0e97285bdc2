"""What the services agree on, and nothing else: event contracts, roles, the clock, text
rules, errors.
Standard library and pydantic only (import-linter holds it)."""
