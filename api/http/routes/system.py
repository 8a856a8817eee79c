from flask import Blueprint, Response

from ...service import policies
from ..openapi import docs_page, spec
from ..request import ctx, json_response, metrics

bp = Blueprint("system", __name__)


@bp.get("/healthz")
def healthz():
    return json_response(policies.health(ctx()))


@bp.get("/metrics")
def prometheus():
    return Response(metrics().render(), 200, mimetype="text/plain; version=0.0.4")


@bp.get("/openapi.json")
def openapi():
    return json_response(spec())


@bp.get("/docs")
def docs():
    return Response(docs_page(), 200, mimetype="text/html")
