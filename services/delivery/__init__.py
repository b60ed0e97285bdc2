"""The delivery service: signed links to published books, and reading sessions."""
