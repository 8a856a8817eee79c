from flask import Blueprint, Response, current_app, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from ...service import policies
from ..openapi import spec, swagger_page
from ..request import ctx, json_response, metrics

bp = Blueprint("system", __name__)


@bp.get("/healthz")
def healthz():
    return json_response(policies.health(ctx(), current_app.extensions.get("creditctl.policy_file")))


@bp.get("/metrics")
def prometheus():
    return Response(metrics().render(), 200, mimetype="text/plain; version=0.0.4")


@bp.get("/openapi.json")
def openapi():
    return json_response(spec())


@bp.get("/docs")
def docs():
    return Response(swagger_page("/docs/assets"), 200, mimetype="text/html")


@bp.get("/docs/assets/<path:name>")
def docs_assets(name):
    """Swagger UI's own files, as the swagger-ui-bundle package ships them (no CDN)."""
    return send_from_directory(str(swagger_ui_path), name, max_age=3600)
