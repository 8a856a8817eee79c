from flask import current_app, g

from ..app import _json, current_key, json_body  # noqa: F401  (re-exported for the blueprints)


def service():
    return current_app.extensions["creditctl"]


def metrics():
    return current_app.extensions["creditctl.metrics"]


def actor() -> str:
    return g.actor


def request_id() -> str:
    return g.request_id
