"""Contacts on the credit file: who to reach at a customer, by which channel, in which language.

Contact data is personal data. It is never part of a decision's facts (so the trail holds none), and a
role that does not need it (auditors) reads a sha256 of each personal field instead of the value.
"""

from __future__ import annotations

import hashlib

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import delete, select

from ..errors import invalid, marshmallow_errors, not_found
from ..store.tables import Contact, Customer
from .validation import StrictBoolean

CHANNELS = ("email", "sms", "phone", "visit", "letter")
LANGUAGES = ("zh_CN", "en")
PERSONAL = ("name", "email", "mobile", "address")
MAX_CONTACTS = 50
MASKED_ROLES = {"auditor"}  # they check decisions, not reach customers


class ContactSchema(Schema):
    class Meta:
        unknown = RAISE

    customer_id = fields.String(load_default=None, validate=validate.Length(min=1, max=128))
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    role = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=128))
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=256))
    mobile = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"\+?[0-9][0-9 \-]{4,30}"))
    address = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000))
    preferred_channel = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CHANNELS))
    language = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(LANGUAGES))
    primary = StrictBoolean(load_default=False)


class _ContactList(Schema):
    class Meta:
        unknown = RAISE

    contacts = fields.List(
        fields.Nested(ContactSchema(exclude=("customer_id",))),
        required=True,
        validate=validate.Length(max=MAX_CONTACTS),
    )

    @validates_schema
    def _one_primary_per_channel(self, data, **kw):
        check_primaries(data["contacts"])


def check_primaries(contacts: list[dict]) -> None:
    """At most one primary contact per channel, and no two contacts of one name."""
    primaries, names = {}, set()
    for i, c in enumerate(contacts):
        if c["name"] in names:
            raise ValidationError({"contacts": {i: {"name": [f"'{c['name']}' is listed twice"]}}})
        names.add(c["name"])
        if c.get("primary"):
            channel = c.get("preferred_channel") or "any"
            if channel in primaries:
                raise ValidationError(
                    {
                        "contacts": {
                            i: {"primary": [f"contact {primaries[channel]} is already the primary one for {channel}"]}
                        }
                    }
                )
            primaries[channel] = i


def view(c: Contact, masked: bool) -> dict:
    out = {
        "name": c.name,
        "role": c.role,
        "email": c.email,
        "mobile": c.mobile,
        "address": c.address,
        "preferred_channel": c.preferred_channel,
        "language": c.language,
        "primary": c.is_primary,
    }
    if masked:
        for key in PERSONAL:
            if out[key] is not None:
                out[key] = "sha256:" + hashlib.sha256(out[key].encode("utf-8")).hexdigest()
    return out


def list_contacts(ctx, customer_id: str, masked: bool) -> dict:
    with ctx.read_tx() as s:
        if s.get(Customer, customer_id) is None:
            raise not_found("customer", customer_id)
        rows = s.execute(select(Contact).where(Contact.customer_id == customer_id).order_by(Contact.id)).scalars()
        return {"customer_id": customer_id, "masked": masked, "contacts": [view(c, masked) for c in rows]}


def replace_contacts(ctx, customer_id: str, body: dict) -> dict:
    try:
        loaded = _ContactList().load(body)
    except ValidationError as exc:
        raise invalid(marshmallow_errors(exc.messages)) from None
    with ctx.tx() as s:
        if s.get(Customer, customer_id, with_for_update=True) is None:
            raise not_found("customer", customer_id)
        s.execute(delete(Contact).where(Contact.customer_id == customer_id))
        for c in loaded["contacts"]:
            s.add(
                Contact(
                    customer_id=customer_id,
                    name=c["name"],
                    role=c["role"],
                    email=c["email"],
                    mobile=c["mobile"],
                    address=c["address"],
                    preferred_channel=c["preferred_channel"],
                    language=c["language"],
                    is_primary=c["primary"],
                )
            )
    return list_contacts(ctx, customer_id, masked=False)
