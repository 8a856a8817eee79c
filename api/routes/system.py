from flask import Blueprint, Response, current_app
from sqlalchemy import text

from ._common import _json, metrics, service

bp = Blueprint("system", __name__)


@bp.get("/healthz")
def healthz():
    svc = service()
    with svc.tx() as s:
        s.execute(text("SELECT 1"))
        policy = svc.registry.active(s)
    return _json({"status": "ok", "policy_version": policy.version})


@bp.get("/metrics")
def prometheus():
    return Response(metrics().render(), 200, mimetype="text/plain; version=0.0.4")


@bp.get("/openapi.json")
def openapi():
    from ..openapi import spec
    return _json(spec())


@bp.get("/docs")
def docs():
    from ..openapi import docs_page
    return Response(docs_page(), 200, mimetype="text/html")
