from flask import Blueprint, request

from ...errors import invalid
from ...service import collection_records, contacts, customers
from ...service.validation import check_dates
from ..request import actor, ctx, current_key, json_body, json_response, request_id
from ..schemas import CollectionRecordRequest

bp = Blueprint("customers", __name__)


@bp.get("/customers")
def list_customers():
    """Search, filter, sort and page through the credit files (api/service/customer_list.py)."""
    current_key("customers:read")
    args = request.args
    unknown = sorted(set(args) - set(customers.LIST_PARAMS))
    if unknown:
        raise invalid({k: [f"unknown parameter; one of {', '.join(customers.LIST_PARAMS)}"] for k in unknown})
    raw = args.get("limit", "50")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= customers.LIST_LIMIT_MAX:
        raise invalid({"limit": [f"an integer from 1 to {customers.LIST_LIMIT_MAX}"]})
    return json_response(
        customers.list_customers(ctx(), {k: args.get(k) for k in customers.LIST_PARAMS}, limit=int(raw))
    )


@bp.put("/customers/<customer_id>")
def put_customer(customer_id):
    key = current_key("customers:write")
    reason = request.args.get("reason")
    if reason is not None and len(reason) > 1000:
        raise invalid({"reason": ["at most 1000 characters"]})
    created, body = customers.put_customer(
        ctx(), customer_id, json_body(), role=key.role, actor=actor(), request_id=request_id(), reason=reason
    )
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


@bp.get("/customers/<customer_id>/contacts")
def get_contacts(customer_id):
    key = current_key("contacts:read")
    # personal data: a role that may not maintain contacts reads hashes (docs/import.md, "Contacts")
    return json_response(contacts.list_contacts(ctx(), customer_id, masked=key.role in contacts.MASKED_ROLES))


@bp.put("/customers/<customer_id>/contacts")
def put_contacts(customer_id):
    current_key("contacts:write")
    return json_response(contacts.replace_contacts(ctx(), customer_id, json_body()))


@bp.post("/customers/<customer_id>/collection-records")
def log_collection_record(customer_id):
    """A contact made without a prior action (催收记录), chained in the customer's trail as evidence."""
    current_key("actions:write")
    req = CollectionRecordRequest().load(json_body())
    return json_response(collection_records.log_contact(ctx(), customer_id, req, actor(), request_id()), 201)
