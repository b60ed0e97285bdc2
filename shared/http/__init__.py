"""Serving HTTP: the ASGI fast-path pieces, bearer auth, problems, middleware, OpenAPI,
pagination, the server."""
