from flask import Blueprint, request

from ..errors import invalid
from ..service import check_dates
from ._common import _json, current_key, json_body, service

bp = Blueprint("customers", __name__)


@bp.put("/customers/<customer_id>")
def put_customer(customer_id):
    current_key("customers:write")
    created, body = service().put_customer(customer_id, json_body())
    return _json(body, 201 if created else 200)


@bp.get("/customers/<customer_id>")
def get_customer(customer_id):
    current_key("customers:read")
    import datetime as dt
    as_of = request.args.get("as_of")
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise invalid({"as_of": [f"'{as_of}' is not an ISO date"]}) from None
    check_dates(day, "as_of")
    return _json(service().get_customer(customer_id, day))
