from flask import Blueprint, request

from ...errors import invalid
from ...service import customers
from ...service.validation import check_dates
from ..request import ctx, current_key, json_body, json_response

bp = Blueprint("customers", __name__)


@bp.put("/customers/<customer_id>")
def put_customer(customer_id):
    current_key("customers:write")
    created, body = customers.put_customer(ctx(), customer_id, json_body())
    return json_response(body, 201 if created else 200)


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
    return json_response(customers.get_customer(ctx(), customer_id, day))
