"""Bulk import over HTTP: POST /v1/imports (multipart: one or more `files`), the template, one run."""

import os
import tempfile

from flask import Blueprint, Response, request

from ...errors import DomainError, invalid
from ...jobs.importer.reader import Source
from ...jobs.importer.run import get_import, run_import
from ...jobs.importer.template import template_xlsx
from ..request import actor, ctx, current_key, json_response
from ..schemas import ImportQuery

bp = Blueprint("imports", __name__)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.post("/imports")
def post_import():
    key = current_key("imports:write")
    q = ImportQuery().load(request.args.to_dict())
    uploads = request.files.getlist("files")
    if request.mimetype != "multipart/form-data" or not uploads:
        raise DomainError("E_BAD_REQUEST", "send the files as multipart/form-data, field 'files' (one or more)")
    for i, f in enumerate(uploads):
        if not f.filename:
            raise invalid({f"files[{i}]": ["a file name is required: it says what the file holds"]})
    with tempfile.TemporaryDirectory(prefix="creditctl-upload-") as folder:
        sources = []
        for i, f in enumerate(uploads):
            # each upload on disk (werkzeug spools large ones already): the import streams it, never holds it
            path = os.path.join(folder, str(i))
            f.save(path)
            sources.append(Source(f.filename, (lambda path=path: open(path, "rb")), q["encoding"]))
        result = run_import(
            ctx(),
            sources,
            actor=actor(),
            as_of=q["as_of"],
            dry_run=q["dry_run"],
            skip_invalid=q["skip_invalid"],
            role=key.role,
            reason=q["reason"],
        )
    if result["status"] == "rejected":
        raise DomainError(
            "E_IMPORT_INVALID",
            f"{result['error_count']} error(s); nothing was written (import {result['id']})",
            {"import": result["errors"]},
        )
    return json_response(result, 201)


@bp.get("/imports/template.xlsx")
def template():
    current_key("imports:read")
    return Response(
        template_xlsx(),
        200,
        mimetype=XLSX,
        headers={"Content-Disposition": "attachment; filename=creditctl-import-template.xlsx"},
    )


@bp.get("/imports/<import_id>")
def get_one(import_id):
    current_key("imports:read")
    return json_response(get_import(ctx(), import_id))
