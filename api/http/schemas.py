"""Request schemas of the HTTP API (unknown fields rejected)."""
from __future__ import annotations

import re

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from engine.facts import AmountField

from ..store.trail import RECORD_KINDS, RECORD_OUTCOMES
from ..service.legal_cases import STATUSES as LEGAL_STATUSES
from ..service.validation import DATE_MAX, DATE_MIN, DATE_RANGE_MESSAGE, EVENT_TYPES, StrictBoolean

IN_RANGE = validate.Range(min=DATE_MIN, max=DATE_MAX, error=DATE_RANGE_MESSAGE)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class CreditCheckRequest(_Strict):
    customer_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    order_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    amount = AmountField(required=True, metadata={"description": "decimal string, e.g. \"30000.00\""})
    currency = fields.String(required=True, validate=validate.Length(equal=3))
    reserve = StrictBoolean(load_default=False)
    as_of = fields.Date(load_default=None, validate=IN_RANGE)
    expires_on = fields.Date(load_default=None, validate=IN_RANGE)


class EventRequest(_Strict):
    event_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    customer_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    as_of = fields.Date(load_default=None, validate=IN_RANGE)
    data = fields.Dict(required=True)


class EvaluateRequest(_Strict):
    as_of = fields.Date(load_default=None, validate=IN_RANGE)


class ActionCompleteRequest(_Strict):
    outcome = fields.String(required=True, validate=validate.Length(min=1, max=64))
    channel = fields.String(load_default=None, validate=validate.Length(min=1, max=32))
    note = fields.String(load_default=None)


class PolicyTextRequest(_Strict):
    text = fields.String(required=True)
    source = fields.String(load_default="api", validate=validate.Length(min=1, max=512))


class PublishRequest(PolicyTextRequest):
    # the day the version is in force from (default today; a later day schedules it)
    effective_from = fields.Date(load_default=None, allow_none=True, validate=IN_RANGE)
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000))


class PublishQuery(_Strict):
    """A YAML body's publish options, in the query string."""
    source = fields.String(load_default="api", validate=validate.Length(min=1, max=512))
    effective_from = fields.Date(load_default=None, validate=IN_RANGE)
    reason = fields.String(load_default=None, validate=validate.Length(max=1000))


class CancelActivationRequest(_Strict):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


def _ordered(low: str, high: str, relation: str = "after"):
    """A range filter whose ends are crossed can't match: refused (422) rather than an empty list."""
    @validates_schema
    def check(self, data, **kw):
        if data.get(low) is not None and data.get(high) is not None and data[low] > data[high]:
            raise ValidationError(f"{low} is {relation} {high}: nothing can match", low)
    return check


class DecisionQuery(Schema):
    class Meta:
        unknown = RAISE
    customer = fields.String()
    kind = fields.String(validate=validate.OneOf(RECORD_KINDS))
    outcome = fields.String(validate=validate.OneOf(RECORD_OUTCOMES))
    since = fields.Date(validate=IN_RANGE)
    until = fields.Date(validate=IN_RANGE)
    _since_until = _ordered("since", "until")
    cursor = fields.String()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "jsonl", "csv"]))
    locale = fields.String(validate=validate.OneOf(["en", "zh"]))     # read by request.reader_locale


def _action_cursor(value: str) -> None:
    # an action id: digits within the 32-bit id column (a larger number cannot be a cursor we returned)
    if not (re.fullmatch(r"[0-9]{1,10}", value) and int(value) <= 2**31 - 1):
        raise ValidationError("not a cursor returned by this API")


class ActionQuery(Schema):
    class Meta:
        unknown = RAISE
    status = fields.String(load_default="open", validate=validate.OneOf(["open", "queued", "sent", "failed", "done", "closed", "cancelled"]))
    owner = fields.String()
    customer = fields.String()
    cursor = fields.String(validate=_action_cursor)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class OutboxQuery(Schema):
    class Meta:
        unknown = RAISE
    status = fields.String(validate=validate.OneOf(["queued", "sending", "sent", "failed", "dead"]))
    customer = fields.String(validate=validate.Length(min=1, max=128))
    action = fields.String(validate=_action_cursor)
    cursor = fields.String(validate=_action_cursor)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class SweepRequest(_Strict):
    as_of = fields.Date(load_default=None, validate=IN_RANGE)


class ImportQuery(_Strict):
    dry_run = fields.Boolean(load_default=False)
    skip_invalid = fields.Boolean(load_default=False)
    as_of = fields.Date(load_default=None, validate=IN_RANGE)
    encoding = fields.String(load_default=None, validate=validate.OneOf(("utf-8", "gb18030")))
    # what a controller's change of existing credit files' decision fields is recorded with
    reason = fields.String(load_default=None, validate=validate.Length(min=1, max=500))


class SimulateRequest(_Strict):
    text = fields.String(required=True)
    source = fields.String(load_default="api", validate=validate.Length(min=1, max=512))
    as_of = fields.Date(load_default=None, validate=IN_RANGE)


class SimulateQuery(Schema):
    """Query of POST /v1/policies/simulate; `as_of` and `source` there go with a YAML body."""
    class Meta:
        unknown = RAISE
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))
    as_of = fields.Date(load_default=None, validate=IN_RANGE)
    source = fields.String(validate=validate.Length(min=1, max=512))


# ---------------------------------------------------------------------------------------- referrals
REFERRAL_STATUSES = ("open", "released", "rejected", "expired", "all")
CONDITION_TYPES = ("deposit", "prepayment", "guarantee", "other")


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be blank")


class ReleaseCondition(_Strict):
    type = fields.String(required=True, validate=validate.OneOf(CONDITION_TYPES))
    amount = AmountField(load_default=None, metadata={"description": "decimal string, e.g. \"15000.00\""})
    note = fields.String(load_default=None, validate=validate.Length(max=500))


class ReferralReleaseRequest(_Strict):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])
    conditions = fields.List(fields.Nested(ReleaseCondition), load_default=list, validate=validate.Length(max=20))


class ReferralRejectRequest(_Strict):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])


class ReferralExpireRequest(_Strict):
    as_of = fields.Date(load_default=None, validate=IN_RANGE)


class ReferralQuery(Schema):
    class Meta:
        unknown = RAISE
    status = fields.String(load_default="open", validate=validate.OneOf(REFERRAL_STATUSES))
    customer = fields.String(validate=validate.Length(min=1, max=128))
    min_amount = AmountField()
    max_amount = AmountField()
    min_age_days = fields.Integer(validate=validate.Range(min=0, max=36500))
    max_age_days = fields.Integer(validate=validate.Range(min=0, max=36500))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    _amounts = _ordered("min_amount", "max_amount", "above")
    _ages = _ordered("min_age_days", "max_age_days", "above")


class HoldRequest(_Strict):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])
    until = fields.Date(load_default=None, validate=IN_RANGE, metadata={"description": "the hold's last day"})


# ---------------------------------------------------------------------------------------- governance (issue 12)
class KeyRevokeRequest(_Strict):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])


class KeyRotateRequest(_Strict):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])
    grace_seconds = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=7 * 24 * 3600),
                                   metadata={"description": "how long the old secret keeps working (0: not at all)"})


class KeyQuery(_Strict):
    include_revoked = fields.Boolean(load_default=True)


class LimitGrantRequest(_Strict):
    limit = AmountField(required=True, metadata={"description": "decimal string, e.g. \"800000.00\""})
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])
    until = fields.Date(load_default=None, validate=IN_RANGE, metadata={"description": "the grant's last day"})
    refer = fields.Boolean(load_default=False, metadata={
        "description": "above the key's authority: wait for a key at the level needed instead of refusing"})


class ApprovalDecisionRequest(_Strict):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])


class ApprovalQuery(_Strict):
    status = fields.String(load_default="pending", validate=validate.OneOf(("pending", "approved", "rejected", "all")))
    kind = fields.String(validate=validate.OneOf(("limit_grant", "policy_publish")))


class GroupRequest(_Strict):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=256), _not_blank])
    limit = AmountField(required=True, metadata={"description": "the group limit, e.g. \"2000000.00\""})
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])


class GroupMemberRequest(_Strict):
    group_id = fields.String(required=True, allow_none=True, validate=validate.Length(min=1, max=128),
                             metadata={"description": "the group to join; null leaves the customer's group"})
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])


def _in_date_range(value) -> None:
    if not DATE_MIN <= value.date() <= DATE_MAX:
        raise ValidationError(DATE_RANGE_MESSAGE)


class CollectionRecordRequest(_Strict):
    """A contact logged without a prior action (POST /v1/customers/{id}/collection-records)."""
    channel = fields.String(required=True, validate=[validate.Length(min=1, max=32), _not_blank])
    outcome = fields.String(required=True, validate=[validate.Length(min=1, max=64), _not_blank])
    note = fields.String(load_default=None, validate=validate.Length(max=4000))
    invoice_id = fields.String(load_default=None, validate=validate.Length(min=1, max=128))
    at = fields.DateTime(load_default=None, validate=_in_date_range,
                         metadata={"description": "when the contact happened (ISO date-time, UTC when no offset); "
                                                  "now when omitted; never in the future"})


class LegalStatusRequest(_Strict):
    """A legal case's next status (POST /v1/legal-cases/{id}/status): one way, with the reason."""
    status = fields.String(required=True, validate=validate.OneOf(list(LEGAL_STATUSES)))
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=2000), _not_blank])
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))


class LegalCaseQuery(Schema):
    class Meta:
        unknown = RAISE
    status = fields.String(validate=validate.OneOf(["open", "closed", *LEGAL_STATUSES]))
    cursor = fields.String(validate=_action_cursor)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
