"""The HTTP adapter: app factory, request parsing, schemas, error mapping, OpenAPI, routes, gunicorn."""
