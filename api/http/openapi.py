"""OpenAPI 3 description of the API, built with apispec from the request schemas."""
from __future__ import annotations

from functools import lru_cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from engine.facts import AmountField, CaseSchema, CustomerSchema

from ..service.events import EVENT_DATA_SCHEMAS
from ..service.legal_cases import STATUSES as LEGAL_STATUSES
from ..store.trail import RECORD_KINDS, RECORD_OUTCOMES

from . import responses
from .schemas import (
    ActionCompleteRequest,
    ApprovalDecisionRequest,
    GroupMemberRequest,
    GroupRequest,
    KeyRevokeRequest,
    KeyRotateRequest,
    LegalStatusRequest,
    LimitGrantRequest,
    CreditCheckRequest,
    EvaluateRequest,
    EventRequest,
    PolicyTextRequest,
    PublishRequest,
    CancelActivationRequest,
    HoldRequest,
    CollectionRecordRequest,
    ReferralExpireRequest,
    ReferralRejectRequest,
    ReferralReleaseRequest,
    SimulateRequest,
)

ERROR = {"type": "object", "required": ["code", "message", "errors"],
         "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                        "errors": {"type": "object", "additionalProperties": {"type": "array",
                                                                              "items": {"type": "string"}}}}}
OBJECT = {"type": "object"}


# The one money rule (docs/http-input.md): a decimal string of ASCII digits with at most the currency's decimals
# (2 for CNY, the shipped policy's); a JSON integer is accepted too, never a number with a fraction or exponent.
# (The string alone is declared: an anyOf in every amount of a case doubles the fuzzing time of its operations.)
AMOUNT_IN = {"type": "string", "pattern": r"^[0-9]{1,16}(\.[0-9]{1,2})?$", "example": "30000.00",
             "description": "decimal string (ASCII digits, at most the currency's decimals: 2 for CNY; no spaces, "
                            "separators or exponents); a JSON integer is accepted too; never a float"}


def _amount(self, field, **kwargs):
    if isinstance(field, AmountField):
        return dict(AMOUNT_IN)
    return {}


_FINDING = {"type": "object", "required": ["subject", "seq", "kind", "problem"], "properties": {
    "subject": {"type": "string", "nullable": True, "description": "the chain (customer); null for the log itself"},
    "seq": {"type": "integer", "nullable": True}, "decision_id": {"type": "string", "nullable": True},
    "checkpoint": {"type": "integer", "description": "the checkpoint line (0-based) the finding is against"},
    "kind": {"type": "string", "enum": [
        "seq_gap", "prev_hash_mismatch", "hash_mismatch", "records_deleted", "head_mismatch", "head_missing",
        "head_rebuilt", "record_changed", "record_not_in_checkpoint", "chain_not_in_checkpoint", "chain_deleted",
        "checkpoint_unreadable", "checkpoint_link", "checkpoint_signature", "checkpoint_key", "checkpoint_root"]},
    "problem": {"type": "string"}}}
AUDIT_VERIFY = {"type": "object", "required": ["ok", "records_checked", "chains", "broken", "findings", "checkpoints"],
                "properties": {
                    "ok": {"type": "boolean", "description": "no finding at all"},
                    "records_checked": {"type": "integer"}, "chains": {"type": "integer"},
                    "broken": {"type": "array", "items": {"type": "object"},
                               "description": "the first broken record of each broken chain"},
                    "first_broken": {"type": "object", "nullable": True},
                    "findings": {"type": "array", "items": _FINDING},
                    "checkpoints": {"type": "object", "properties": {
                        "configured": {"type": "boolean"}, "file": {"type": "string"}, "count": {"type": "integer"},
                        "signatures": {"type": "string"},
                        "last": {"type": "object", "nullable": True, "properties": {
                            "n": {"type": "integer"}, "time": {"type": "string"}, "records": {"type": "integer"},
                            "subjects": {"type": "integer"}}},
                        "findings": {"type": "array", "items": _FINDING}}}}}


def _op(summary, perm, schema=None, ok=200, params=(), tag="", errors=(401, 403, 422)):
    op = {"summary": summary, "tags": [tag], "security": [{"bearer": []}] if perm else [],
          "responses": {str(ok): {"description": "success", "content": {"application/json": {"schema": OBJECT}}}}}
    for code in errors:
        op["responses"][str(code)] = {"description": "error", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if schema:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if params:
        op["parameters"] = list(params)
    if perm:
        op["description"] = f"Needs permission `{perm}`."
    return op


def _path(name, description=""):
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


def _query(name, schema=None):
    return {"name": name, "in": "query", "required": False, "schema": schema or {"type": "string"}}


# the language of a decision's reasons (api/http/request.reader_locale): wins over Accept-Language (zh…: zh)
_LOCALE = {**_query("locale", {"type": "string", "enum": ["en", "zh"]}),
           "description": "the language of the reasons: en (default) or zh; without it, the first of en / zh "
                          "in Accept-Language (docs/decisions.md#reasons)"}


_MONEY = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "example": "30000.00"}
_DATE = {"type": "string", "format": "date"}
_TEXT_OR_NULL = {"type": "string", "nullable": True}
REFERRAL = {"type": "object", "properties": {
    "id": {"type": "string"}, "order_id": {"type": "string"}, "customer_id": {"type": "string"},
    "status": {"type": "string", "enum": ["open", "released", "rejected", "expired"]},
    "amount": _MONEY, "limit": _MONEY, "exposure": _MONEY, "exposure_after_order": _MONEY, "over_limit": _MONEY,
    "reasons": {"type": "array", "items": {"type": "object", "properties": {
        "rule": {"type": "string"}, "family": {"type": "string"}, "message": {"type": "string"}}}},
    "reserve": {"type": "boolean"}, "requested_by": {"type": "string"}, "opened_on": _DATE,
    "expires_on": {**_DATE, "description": "the last day it is open"}, "decision_id": {"type": "string"},
    "closed_by": _TEXT_OR_NULL, "close_reason": _TEXT_OR_NULL, "closed_at": _TEXT_OR_NULL,
    "close_decision_id": _TEXT_OR_NULL,
    "conditions": {"type": "array", "nullable": True, "items": {"type": "object"}},
    "age_days": {"type": "integer", "description": "in GET /v1/referrals only"}}}
CREDIT_ORDER = {"type": "object", "properties": {
    "order_id": {"type": "string"}, "customer_id": {"type": "string"},
    "status": {"type": "string", "enum": ["approved", "referred", "released", "rejected", "expired"]},
    "amount": _MONEY, "requested_by": {"type": "string"}, "decision_id": {"type": "string"},
    "updated_at": {"type": "string"},
    "reservation": {"type": "object", "nullable": True, "properties": {
        "status": {"type": "string", "enum": ["held", "provisional", "released", "invoiced"]}, "amount": _MONEY,
        "expires_on": _DATE}},
    "referral": {"allOf": [{"$ref": "#/components/schemas/Referral"}], "nullable": True}}}


ACTIVATION = {"type": "object", "properties": {
    "id": {"type": "integer"}, "version": {"type": "string"}, "effective_from": _DATE,
    "status": {"type": "string", "enum": ["scheduled", "in_force", "superseded", "cancelled"]},
    "created_at": {"type": "string"}, "created_by": {"type": "string"}, "reason": {"type": "string"},
    "activated_at": {**_TEXT_OR_NULL, "description": "when it came into force (recorded once)"},
    "decision_id": {**_TEXT_OR_NULL, "description": "the trail record of its activation or scheduling"},
    "cancelled_at": _TEXT_OR_NULL, "cancelled_by": _TEXT_OR_NULL, "cancel_reason": _TEXT_OR_NULL,
    "cancel_decision_id": {"type": "string", "description": "in the answer of a cancel only"}}}
POLICY_LIST = {"type": "object", "properties": {
    "today": _DATE, "in_force": {"type": "string", "description": "the version in force today"},
    "versions": {"type": "array", "items": {"type": "object", "properties": {
        "version": {"type": "string"}, "name": {"type": "string"}, "source": {"type": "string"},
        "created_at": {"type": "string"}, "created_by": {"type": "string"}, "active": {"type": "boolean"},
        "activations": {"type": "array", "items": {"type": "integer"}}}}},
    "activations": {"type": "array", "items": {"$ref": "#/components/schemas/PolicyActivation"}},
    "scheduled": {"type": "array", "items": {"$ref": "#/components/schemas/PolicyActivation"}}}}
PUBLISHED = {"type": "object", "properties": {
    "version": {"type": "string"}, "name": {"type": "string"}, "changed": {"type": "boolean"},
    "active": {"type": "boolean", "description": "in force today"}, "scheduled": {"type": "boolean"},
    "effective_from": _DATE, "activation_id": {"type": "integer", "nullable": True},
    "pending": {"type": "boolean", "description": "202: a four-eyes proposal"}}}


def _answer(op: dict, status: int, schema: dict) -> dict:
    op["responses"][str(status)]["content"]["application/json"]["schema"] = schema
    return op


def _referral_paths(s, ref) -> None:
    """Referred credit checks (api/http/routes/referrals.py, docs/governance.md)."""
    s.components.schema("Referral", REFERRAL)
    s.components.schema("CreditOrder", CREDIT_ORDER)
    for schema in (ReferralReleaseRequest, ReferralRejectRequest, ReferralExpireRequest):
        s.components.schema(schema.__name__, schema=schema)
    rid = _path("referral_id")
    s.path("/v1/referrals", operations={"get": _answer(_op(
        "Referrals, oldest first (filters: status, customer, amount range, age in days)", "referrals:read", None,
        200, [_query("status", {"type": "string", "enum": ["open", "released", "rejected", "expired", "all"]}),
              _query("customer"), _query("min_amount", _MONEY), _query("max_amount", _MONEY),
              _query("min_age_days", {"type": "integer", "minimum": 0, "maximum": 36500}),
              _query("max_age_days", {"type": "integer", "minimum": 0, "maximum": 36500}),
              _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})], "referrals", (401, 403, 422)),
        200, {"type": "object", "properties": {"as_of": _DATE, "referrals": {"type": "array", "items": ref("Referral")}}})})
    s.path("/v1/referrals/{referral_id}/release", operations={"post": _answer(_op(
        "Release a referred order (mandatory reason, optional conditions); the release needs the authority level "
        "the policy's matrix gives for its amount over the limit", "referrals:write", ref("ReferralReleaseRequest"),
        200, [rid], "referrals", (400, 401, 403, 404, 409, 422)), 200, ref("Referral"))})
    s.path("/v1/referrals/{referral_id}/reject", operations={"post": _answer(_op(
        "Reject a referred order (mandatory reason); frees its provisional hold", "referrals:write",
        ref("ReferralRejectRequest"), 200, [rid], "referrals", (400, 401, 403, 404, 409, 422)), 200, ref("Referral"))})
    s.path("/v1/referrals/{referral_id}/recheck", operations={"post": _answer(_op(
        "Evaluate the referred order again under today's ledger (approve releases, reject rejects)",
        "referrals:write", None, 200, [rid], "referrals", (401, 403, 404, 409)), 200,
        {"type": "object", "properties": {"referral": ref("Referral"), "outcome": {"type": "string"},
                                          "decision_id": {"type": "string"},
                                          "reasons": {"type": "array", "items": {"type": "object"}}}})})
    s.path("/v1/referrals/expire", operations={"post": _answer(_op(
        "Expire the referrals open past their last day, freeing their provisional holds", "referrals:write",
        ref("ReferralExpireRequest"), 200, (), "referrals", (400, 401, 403, 422)), 200,
        {"type": "object", "properties": {"as_of": _DATE, "expired": {"type": "integer"},
                                          "referral_ids": {"type": "array", "items": {"type": "string"}}}})})


HOLD = {"type": "object", "nullable": True, "properties": {
    "reason": {"type": "string"}, "placed_on": _DATE, "until": {**_DATE, "nullable": True},
    "placed_by": {"type": "string"}, "decision_id": {"type": "string"}}}
HOLD_CHANGE = {"type": "object", "properties": {
    "customer_id": {"type": "string"}, "hold": HOLD, "before": HOLD, "decision_id": {"type": "string"},
    "alerts": {"type": "array", "items": {"type": "object", "properties": {
        "severity": {"type": "string"}, "customer_id": {"type": "string"}, "message": {"type": "string"}}}}}}


MEMBER_HOLD = {"type": "object", "nullable": True, "required": ["group_id", "reason", "placed_on", "in_force"],
               "description": "the hold of the customer's group (every member's checks reject while in force)",
               "properties": {**HOLD["properties"], "group_id": {"type": "string"}, "name": {"type": "string"},
                              "in_force": {"type": "boolean", "description": "today"}}}


def _hold_paths(s, ref) -> None:
    """The credit hold (停止赊销) on a credit file (api/http/routes/credit_file.py, docs/governance.md)."""
    s.components.schema("HoldRequest", schema=HoldRequest)
    cid = _path("customer_id")
    s.path("/v1/customers/{customer_id}/hold", operations={
        "get": _answer(_op("The customer's credit hold, if any, and whether it is in force today; `group_hold`: "
                           "the hold of its group, which it inherits", "customers:read",
                           None, 200, [cid], "credit file", (401, 403, 404)), 200,
                       {"type": "object", "required": ["customer_id", "hold", "in_force", "group_hold"],
                        "properties": {"customer_id": {"type": "string"}, "hold": HOLD,
                                       "in_force": {"type": "boolean"}, "group_hold": MEMBER_HOLD}}),
        "put": _answer(_op("Put the customer on credit hold (or replace its hold): every credit check rejects with "
                           "the reason until lifted or past `until`", "holds:write", ref("HoldRequest"), 200, [cid],
                           "credit file", (400, 401, 403, 404, 422)), 200, HOLD_CHANGE)})
    s.path("/v1/customers/{customer_id}/hold/lift", operations={
        "post": _answer(_op("Lift the customer's credit hold (mandatory reason)", "holds:write",
                            ref("ReferralRejectRequest"), 200, [cid], "credit file", (400, 401, 403, 404, 409, 422)),
                        200, HOLD_CHANGE)})


_STR = {"type": "string"}
API_KEY = {"type": "object", "properties": {
    "name": _STR, "role": _STR, "person": _TEXT_OR_NULL, "authority": _TEXT_OR_NULL, "created_at": _STR,
    "revoked": {"type": "boolean"}, "revoked_at": _TEXT_OR_NULL, "revoked_by": _TEXT_OR_NULL,
    "revoke_reason": _TEXT_OR_NULL, "rotated_at": _TEXT_OR_NULL,
    "previous_secret_until": {**_TEXT_OR_NULL, "description": "a rotated key's old secret works until then"}}}
GRANT = {"type": "object", "nullable": True, "properties": {
    "limit": _MONEY, "policy_limit_at_grant": _MONEY, "until": {**_DATE, "nullable": True}, "reason": _STR,
    "granted_by": _STR, "person": _TEXT_OR_NULL, "authority": _TEXT_OR_NULL, "approved_by": _TEXT_OR_NULL,
    "granted_at": _STR, "decision_id": _STR}}
APPROVAL = {"type": "object", "properties": {
    "id": _STR, "kind": {"type": "string", "enum": ["limit_grant", "policy_publish"]}, "subject": _STR,
    "status": {"type": "string", "enum": ["pending", "approved", "rejected"]}, "requested_by": _STR,
    "requested_person": _TEXT_OR_NULL, "reason": _STR, "requested_at": _STR, "request_decision_id": _STR,
    "decided_by": _TEXT_OR_NULL, "decided_person": _TEXT_OR_NULL, "decided_at": _TEXT_OR_NULL,
    "decision_reason": _TEXT_OR_NULL, "decision_id": _TEXT_OR_NULL,
    "payload": {"type": "object", "description": "the change asked for (a policy's text is left out)"}}}
PENDING = {"type": "object", "properties": {"status": {"type": "string", "enum": ["pending"]},
                                            "why": {"type": "string", "enum": ["authority", "four_eyes"]},
                                            "approval": {"$ref": "#/components/schemas/Approval"}}}
GRANT_CHANGE = {"type": "object", "properties": {
    "customer_id": _STR, "status": {"type": "string", "enum": ["granted", "revoked", "rejected"]}, "grant": GRANT,
    "before": GRANT, "policy_limit": _MONEY, "decision_id": _STR}}


GROUP = {"type": "object", "nullable": True, "properties": {
    "id": _STR, "name": _STR, "limit": _MONEY, "updated_by": _STR, "updated_at": _STR, "decision_id": _STR}}


GROUP_HOLD_CHANGE = {"type": "object", "required": ["group_id", "hold", "before", "decision_id", "member_decisions",
                                                   "alerts"], "properties": {
    "group_id": _STR, "hold": HOLD, "before": HOLD,
    "decision_id": {"type": "string", "description": "the record in the group's chain (`group:<id>`)"},
    "member_decisions": {"type": "object", "additionalProperties": _STR,
                         "description": "customer id → the record of the change in that member's chain"},
    "alerts": {"type": "array", "items": {"type": "object", "required": ["severity", "group_id", "message"],
                                          "properties": {"severity": {"type": "string", "enum": ["critical"]},
                                                         "group_id": _STR, "message": _STR,
                                                         "customer_ids": {"type": "array", "items": _STR}}}}}}
MEMBER_ALERT = {"type": "object", "required": ["severity", "customer_id", "group_id", "message"], "properties": {
    "severity": {"type": "string", "enum": ["critical"]}, "customer_id": _STR, "group_id": _STR, "message": _STR}}
HOLD_OF_GROUP = {**HOLD, "required": ["group_id", "reason", "placed_on", "in_force"], "properties": {
    **HOLD["properties"], "group_id": _STR, "in_force": {"type": "boolean", "description": "today"}}}


def _group_paths(s, ref) -> None:
    """Customer groups (集团客户) with a group limit and a group hold (api/service/groups.py)."""
    for schema in (GroupRequest, GroupMemberRequest):
        s.components.schema(schema.__name__, schema=schema)
    gid, cid = _path("group_id"), _path("customer_id")
    s.path("/v1/groups/{group_id}", operations={
        "get": _answer(_op("A customer group: its limit, members, hold and exposure today (the members' summed)",
                           "customers:read", None, 200, [gid], "credit file", (401, 403, 404)), 200,
                       {"allOf": [GROUP, {"type": "object", "required": ["members", "hold", "hold_in_force"],
                                          "properties": {
                           "members": {"type": "array", "items": _STR}, "exposure": _MONEY, "available": _MONEY,
                           "hold": HOLD, "hold_in_force": {"type": "boolean"}, "as_of": _DATE}}]}),
        "put": _answer(_op("Create or change a customer group and its limit (mandatory reason)", "groups:write",
                           ref("GroupRequest"), 200, [gid], "credit file", (400, 401, 403, 422)), 200,
                       {"type": "object", "properties": {"group": GROUP, "before": GROUP, "decision_id": _STR}})})
    s.path("/v1/customers/{customer_id}/group", operations={"put": _answer(_op(
        "Put a customer in a group (or out of it: group_id null), with a reason", "groups:write",
        ref("GroupMemberRequest"), 200, [cid], "credit file", (400, 401, 403, 404, 422)), 200,
        {"type": "object", "required": ["customer_id", "group_id", "before", "decision_id", "hold_inherited",
                                        "hold_left", "alerts"],
         "properties": {"customer_id": _STR, "group_id": _TEXT_OR_NULL, "before": _TEXT_OR_NULL, "decision_id": _STR,
                        "hold_inherited": {**HOLD_OF_GROUP, "description": "the hold of the group joined, if any"},
                        "hold_left": {**HOLD_OF_GROUP, "description": "the hold of the group left, if any"},
                        "alerts": {"type": "array", "items": MEMBER_ALERT}}})})
    s.path("/v1/groups/{group_id}/hold", operations={
        "get": _answer(_op("The group's credit hold, if any, whether it is in force today, and the members who "
                           "inherit it", "customers:read", None, 200, [gid], "credit file", (401, 403, 404)), 200,
                       {"type": "object", "required": ["group_id", "hold", "in_force", "members"],
                        "properties": {"group_id": _STR, "hold": HOLD, "in_force": {"type": "boolean"},
                                       "members": {"type": "array", "items": _STR}}}),
        "put": _answer(_op("Put the group on credit hold (or replace its hold): every member's credit check rejects "
                           "with the reason (rule credit.group_hold) until lifted or past `until`; a record in the "
                           "group's chain and in each member's", "holds:write", ref("HoldRequest"), 200, [gid],
                           "credit file", (400, 401, 403, 404, 422)), 200, GROUP_HOLD_CHANGE)})
    s.path("/v1/groups/{group_id}/hold/lift", operations={
        "post": _answer(_op("Lift the group's credit hold (mandatory reason): a record in the group's chain and in "
                            "each member's", "holds:write", ref("ReferralRejectRequest"), 200, [gid], "credit file",
                            (400, 401, 403, 404, 409, 422)), 200, GROUP_HOLD_CHANGE)})


def _governance_paths(s, ref) -> None:
    """API keys, granted limits and four-eyes approvals (api/http/routes/keys.py, governance.py; docs/governance.md)."""
    for schema in (KeyRevokeRequest, KeyRotateRequest, LimitGrantRequest, ApprovalDecisionRequest):
        s.components.schema(schema.__name__, schema=schema)
    s.components.schema("ApiKey", API_KEY)
    s.components.schema("Approval", APPROVAL)
    name, cid, aid = _path("name", "the key's name"), _path("customer_id"), _path("approval_id")
    s.path("/v1/keys", operations={"get": _answer(_op(
        "API keys with holder, role, authority level and state (never a secret or its hash)", "keys:read", None, 200,
        [_query("include_revoked", {"type": "boolean"})], "keys", (401, 403, 422)), 200,
        {"type": "object", "properties": {"keys": {"type": "array", "items": ref("ApiKey")}}})})
    s.path("/v1/keys/{name}/revoke", operations={"post": _answer(_op(
        "Revoke a key (mandatory reason): refused from the next request on, in every worker", "keys:write",
        ref("KeyRevokeRequest"), 200, [name], "keys", (400, 401, 403, 404, 409, 422)), 200,
        {"allOf": [ref("ApiKey"), {"type": "object", "properties": {"decision_id": _STR}}]})})
    s.path("/v1/keys/{name}/rotate", operations={"post": _answer(_op(
        "A new secret for a key (in `key`, shown once); the old one works `grace_seconds` more (default 0)",
        "keys:write", ref("KeyRotateRequest"), 200, [name], "keys", (400, 401, 403, 404, 409, 422)), 200,
        {"allOf": [ref("ApiKey"), {"type": "object", "properties": {"key": _STR, "decision_id": _STR}}]})})
    put = _answer(_op("Grant a limit in place of the policy's (above it within the key's authority level; 202 when "
                      "it waits for a higher level or a second person)", "grants:write", ref("LimitGrantRequest"),
                      200, [cid], "credit file", (400, 401, 403, 404, 422, 503)), 200, GRANT_CHANGE)
    put["responses"]["202"] = {"description": "waits for an approval",
                               "content": {"application/json": {"schema": PENDING}}}
    s.path("/v1/customers/{customer_id}/limit-grant", operations={
        "get": _answer(_op("The limit granted in place of the policy's, if any, and whether it is in force today",
                           "customers:read", None, 200, [cid], "credit file", (401, 403, 404)), 200,
                       {"type": "object", "properties": {"customer_id": _STR, "grant": GRANT,
                                                         "in_force": {"type": "boolean"}}}),
        "put": put})
    s.path("/v1/customers/{customer_id}/limit-grant/revoke", operations={"post": _answer(_op(
        "Take a granted limit back (mandatory reason): the policy's limit applies again", "grants:write",
        ref("KeyRevokeRequest"), 200, [cid], "credit file", (400, 401, 403, 404, 409, 422)), 200, GRANT_CHANGE)})
    s.path("/v1/approvals", operations={"get": _answer(_op(
        "Four-eyes approvals, oldest first (status: pending by default, approved, rejected, all; kind)",
        "approvals:read", None, 200, [_query("status", {"type": "string",
                                                        "enum": ["pending", "approved", "rejected", "all"]}),
                                      _query("kind", {"type": "string", "enum": ["limit_grant", "policy_publish"]})],
        "approvals", (401, 403, 422)), 200,
        {"type": "object", "properties": {"approvals": {"type": "array", "items": ref("Approval")}}})})
    _group_paths(s, ref)
    decided = {"type": "object", "properties": {"approval": ref("Approval"), "decision_id": _STR}}
    for step, text in (("approve", "Approve a pending change (another person than the requester; a grant needs "
                                   "the level its amount needs): it is carried out"),
                       ("reject", "Reject a pending change (another person than the requester); nothing changes")):
        s.path(f"/v1/approvals/{{approval_id}}/{step}", operations={"post": _answer(_op(
            text, "approvals:write", ref("ApprovalDecisionRequest"), 200, [aid], "approvals",
            (400, 401, 403, 404, 409, 422)), 200, decided)})


COLLECTION_RECORD = {"type": "object", "properties": {
    "customer_id": {"type": "string"}, "decision_id": {"type": "string"}, "seq": {"type": "integer"},
    "action_id": {"type": "integer", "nullable": True}, "invoice_id": _TEXT_OR_NULL, "type": {"type": "string"},
    "channel": {"type": "string"}, "outcome": {"type": "string"}, "note": _TEXT_OR_NULL,
    "actor": {"type": "string"}, "at": {"type": "string", "format": "date-time"}}}


def _collection_record_paths(s, ref) -> None:
    """Collection records (催收记录) logged without a prior action (api/service/collection_records.py)."""
    s.components.schema("CollectionRecordRequest", schema=CollectionRecordRequest)
    s.path("/v1/customers/{customer_id}/collection-records", operations={
        "post": _answer(_op("Log a contact made without a prior action (channel, outcome, note, time): a record in "
                            "the customer's hash chain, verified by GET /v1/audit/verify", "actions:write",
                            ref("CollectionRecordRequest"), 201, [_path("customer_id")], "actions",
                            (400, 401, 403, 404, 422)), 201, COLLECTION_RECORD)})


def _legal_case_paths(s, ref) -> None:
    """Legal cases a litigation referral opened, and their one-way status (api/service/legal_cases.py)."""
    s.components.schema("LegalStatusRequest", schema=LegalStatusRequest)
    status = _query("status", {"type": "string", "enum": ["open", "closed", *LEGAL_STATUSES]})
    page = [status, _query("cursor", {"type": "string", "pattern": r"^\d+$"}),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})]
    s.path("/v1/legal-cases", operations={"get": _answer(_op(
        "Legal cases (法律诉讼案件), oldest first (status: open, closed or one status)", "legal:read", None, 200,
        page, "legal", (401, 403, 422)), 200, responses.LEGAL_CASES_PAGE)})
    s.path("/v1/customers/{customer_id}/legal-cases", operations={"get": _answer(_op(
        "One customer's legal cases", "legal:read", None, 200, [_path("customer_id"), *page], "legal",
        (401, 403, 404, 422)), 200, responses.LEGAL_CASES_PAGE)})
    s.path("/v1/legal-cases/{case_id}/status", operations={"post": _answer(_op(
        "Move a legal case one way along referred → filed → judgment → enforcement → closed (recovered, settled, "
        "withdrawn, written_off), with the reason: a record in the customer's hash chain (kind legal_case); "
        "any other step is refused with 409 E_LEGAL_TRANSITION", "legal:write", ref("LegalStatusRequest"), 200,
        [{"name": "case_id", "in": "path", "required": True, "schema": {"type": "integer"}}], "legal",
        (400, 401, 403, 404, 409, 422)), 200, ref("LegalCase"))})


def _report_paths(s) -> None:
    """Portfolio reports and statements of account (api/routes/reports.py)."""
    date = {"type": "string", "format": "date"}
    fmt = _query("format", {"type": "string", "enum": ["json", "csv"]})

    def op(summary, params, errors=(401, 403, 422), media=("application/json",)):
        o = _op(summary, "reports:read", None, 200, params, "reports", errors)
        o["responses"]["200"]["content"] = {m: {"schema": OBJECT if m == "application/json" else {"type": "string"}}
                                            for m in media}
        return o
    by = {**_query("by", {"type": "string", "enum": ["customer", "group"], "default": "customer"}),
          "description": "group: the figures summed per customer group (集团客户) as well — JSON `groups`, one row "
                         "per group by id, then key null for the customers in no group; CSV: one row per group"}
    s.path("/v1/reports/aging", operations={"get": op(
        "Aging analysis: per customer, per segment (industry, region, amount tier), per customer group (`groups`: "
        "the members' sums and the group's limit; key null: in no group) and book total; open balance "
        "of each open invoice in the bucket of its own days overdue (the active policy's bands). by=group with "
        "format=csv: one CSV row per group",
        [_query("as_of", date), fmt, by], media=("application/json", "text/csv"))})
    s.path("/v1/reports/aging.svg", operations={"get": op(
        "Aging chart (SVG): the book and each segment (or customer group) as bars stacked by aging bucket, totals "
        "labelled",
        [_query("as_of", date),
         _query("by", {"type": "string", "enum": ["industry", "region", "amount_tier", "group"]})],
        media=("image/svg+xml",))})
    s.path("/v1/reports/overdue", operations={"get": op(
        "Overdue open invoices, most overdue first, with customer, days, open balance and paused reason; by=group: "
        "every overdue invoice's figures per customer group too (`groups`)",
        [_query("as_of", date), _query("limit", {"type": "integer", "minimum": 1, "maximum": 10000}), by])})
    s.path("/v1/reports/dso", operations={"get": op(
        "Days sales outstanding: receivables at as_of / credit sales in the last N days × N; by=group: each "
        "customer group's DSO from its members' figures too (`groups`)",
        [_query("as_of", date), _query("days", {"type": "integer", "minimum": 1, "maximum": 3650}), by])})
    s.path("/v1/reports/collections", operations={"get": op(
        "Collection actions due in a period by type, channel and outcome; by=group: per customer group too "
        "(`groups`)", [_query("since", date), _query("until", date), by])})
    s.path("/v1/reports/interest-accruals", operations={"get": op(
        "Late-interest ledger: the rows the interest-accrual job wrote between from and to (default this month "
        "to today), optionally one customer's, with totals per customer; by=group: totals per customer group too "
        "(`groups`; with format=csv one row per group)", [_query("from", date), _query("to", date),
                                                          _query("customer"), fmt, by],
        (401, 403, 404, 422), ("application/json", "text/csv"))})
    s.path("/v1/customers/{customer_id}/statement", operations={"get": op(
        "Statement of account: opening balance, invoices, credit notes and payments with a running balance, "
        "closing balance and the invoices open at the end", [_path("customer_id"), _query("from", date),
                                                             _query("to", date), fmt],
        (401, 403, 404, 422), ("application/json", "text/csv"))})


IMPORT_RESULT = {"type": "object", "required": ["id", "status", "counts", "errors", "error_count", "decisions"],
                 "properties": {
                     "id": {"type": "string"}, "status": {"type": "string", "enum": ["done", "checked", "rejected"]},
                     "dry_run": {"type": "boolean"}, "actor": {"type": "string"},
                     "as_of": {"type": "string", "format": "date"},
                     "files": {"type": "array", "items": {"type": "object", "properties": {
                         "name": {"type": "string"}, "sha256": {"type": "string"},
                         "kinds": {"type": "array", "items": {"type": "string"}}}}},
                     "counts": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                         k: {"type": "integer"} for k in ("rows", "new", "changed", "unchanged", "rejected")}}},
                     "errors": {"type": "array", "items": {"type": "string"},
                                "description": "FILE:ROW:COLUMN: CODE: message, the first 200"},
                     "error_count": {"type": "integer"}, "decisions": {"type": "integer"},
                     "rejected_csv": {"type": "string", "nullable": True}}}


def _import_paths(s) -> None:
    flag = {"type": "boolean"}
    upload = {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["files"],
        "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}
    post = _op("Import a book: CSV (UTF-8 or GB18030) or XLSX files, validated completely before anything is "
               "written (docs/import.md)", "imports:write", None, 201,
               [_query("dry_run", flag), _query("skip_invalid", flag), _query("as_of", {"type": "string", "format": "date"}),
                _query("encoding", {"type": "string", "enum": ["utf-8", "gb18030"]}),
                _query("reason", {"type": "string", "minLength": 1, "maxLength": 500})], "imports", (400, 401, 403, 422))
    post["requestBody"] = upload
    post["responses"]["201"]["content"]["application/json"]["schema"] = IMPORT_RESULT
    s.path("/v1/imports", operations={"post": post})
    template = _op("The import template: one sheet per kind, and a notes sheet", "imports:read", None, 200, (),
                   "imports", (401, 403))
    template["responses"]["200"]["content"] = {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
            "schema": {"type": "string", "format": "binary"}}}
    s.path("/v1/imports/template.xlsx", operations={"get": template})
    one = _op("One import run: files and their sha256, counts, errors", "imports:read", None, 200,
              [_path("import_id")], "imports", (401, 403, 404))
    one["responses"]["200"]["content"]["application/json"]["schema"] = IMPORT_RESULT
    s.path("/v1/imports/{import_id}", operations={"get": one})


def _event_schemas(s, plugin) -> dict:
    """POST /v1/events: one request schema per event type (its `data` schema), discriminated by `type`."""
    mapping = {}
    base = s.to_dict()["components"]["schemas"]["EventRequest"]
    for type_, data_schema in EVENT_DATA_SCHEMAS.items():
        # customer_updated: any fields of the credit file (a schema already in the spec is referred to)
        if data_schema is None:
            s.components.schema("CustomerUpdate", schema=CustomerSchema(exclude=("id",), partial=True))
            data = {"$ref": "#/components/schemas/CustomerUpdate"}
        else:
            data = plugin.converter.resolve_nested_schema(data_schema)
        name = "".join(p.title() for p in type_.split("_")) + "Event"
        s.components.schema(name, {**base, "properties": {**base["properties"], "type": {
            "type": "string", "enum": [type_]}, "data": data}})
        mapping[type_] = f"#/components/schemas/{name}"
    # anyOf: the variants exclude each other by `type` already, and generators (schemathesis) check oneOf
    # exclusivity per example, which is slow
    return {"anyOf": [{"$ref": target} for target in mapping.values()],
            "discriminator": {"propertyName": "type", "mapping": mapping}}


@lru_cache(maxsize=1)
def spec() -> dict:
    plugin = MarshmallowPlugin()
    s = APISpec("creditctl", "1.0.0", "3.0.3", plugins=[plugin],
                info={"description": "Credit control and collections rules service."})
    plugin.converter.add_attribute_function(_amount)
    s.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    s.components.schema("Error", ERROR)
    s.components.schema("AuditVerifyResponse", AUDIT_VERIFY)
    for schema in (PublishRequest, CancelActivationRequest):
        s.components.schema(schema.__name__, schema=schema)
    for schema in (CreditCheckRequest, EventRequest, EvaluateRequest, ActionCompleteRequest, PolicyTextRequest,
                   SimulateRequest, CaseSchema):
        s.components.schema(schema.__name__, schema=schema)
    s.components.schema("CustomerFile", schema=CustomerSchema(exclude=("id",)))
    ref = lambda n: {"$ref": f"#/components/schemas/{n}"}  # noqa: E731
    cid = _path("customer_id")
    s.path("/v1/customers", operations={
        "get": _op("Search, filter, sort and page through the credit files: `q` matches the id, an id prefix or "
                   "part of the name (Chinese included); bucket, tier, reputation, stage and segment are the last "
                   "recorded decision's classification (`last_decision`), hold a credit hold in force today; "
                   "`next_cursor` continues the same query (keyset: stable at any depth)",
                   "customers:read", None, 200,
                   [_query("q", {"type": "string", "maxLength": 128}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                    _query("cursor", {"type": "string", "maxLength": 512}),
                    _query("sort", {"type": "string", "enum": ["id", "name", "outstanding", "stage"]}),
                    _query("dir", {"type": "string", "enum": ["asc", "desc"]}),
                    _query("bucket", {"type": "string", "description": "an aging_bucket label of the policy"}),
                    _query("tier", {"type": "string", "description": "an amount_tier label of the policy"}),
                    _query("reputation", {"type": "string", "description": "a reputation label of the policy"}),
                    _query("stage", {"type": "integer", "minimum": 0, "maximum": 99}),
                    _query("segment", {"type": "string", "maxLength": 128}),
                    _query("collector", {"type": "string", "maxLength": 128}),
                    _query("hold", {"type": "string", "enum": ["yes", "no"]})], "customers", (401, 403, 422))})
    s.path("/v1/customers/{customer_id}", operations={
        "put": _op("Create or replace a credit file. Decision fields (credit_score, approved_limit, "
                   "approved_terms_days, arrears_reason and, on an existing file, type, industry, region, size, "
                   "deal_type, since) are a controller's: another role sends them unchanged or gets 403 "
                   "E_DECISION_FIELD naming each field; a controller's change needs `reason` and answers the "
                   "`credit_file_change` record's `decision_id`", "customers:write", ref("CustomerFile"), 200,
                   [cid, _query("reason", {"type": "string", "maxLength": 1000})], "customers",
                   (401, 403, 400, 422)),
        "get": _op("Credit file with current classification, limit, exposure and stage", "customers:read", None,
                   200, [cid, _query("as_of", {"type": "string", "format": "date"})], "customers", (401, 403, 404, 422))})
    contact = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
        "name": {"type": "string", "maxLength": 128}, "role": {"type": "string", "nullable": True},
        "email": {"type": "string", "format": "email", "nullable": True},
        "mobile": {"type": "string", "nullable": True}, "address": {"type": "string", "nullable": True},
        "preferred_channel": {"type": "string", "enum": ["email", "sms", "phone", "visit", "letter", None], "nullable": True},
        "language": {"type": "string", "enum": ["zh_CN", "en", None], "nullable": True}, "primary": {"type": "boolean"}}}
    contacts_out = {"type": "object", "required": ["customer_id", "masked", "contacts"], "properties": {
        "customer_id": {"type": "string"}, "masked": {"type": "boolean"},
        "contacts": {"type": "array", "items": {**contact, "additionalProperties": True, "properties": {
            **contact["properties"], "email": {"type": "string", "nullable": True,
                                               "description": "an address, or sha256:… for auditors"}}}}}}
    get_contacts = _op("The customer's contacts (auditors read a sha256 of each personal field)", "contacts:read",
                       None, 200, [cid], "customers", (401, 403, 404))
    put_contacts = _op("Replace the customer's contacts (one primary per channel)", "contacts:write",
                       {"type": "object", "required": ["contacts"], "additionalProperties": False,
                        "properties": {"contacts": {"type": "array", "maxItems": 50, "items": contact}}},
                       200, [cid], "customers", (400, 401, 403, 404, 422))
    for op in (get_contacts, put_contacts):
        op["responses"]["200"]["content"]["application/json"]["schema"] = contacts_out
    s.path("/v1/customers/{customer_id}/contacts", operations={"get": get_contacts, "put": put_contacts})
    s.path("/v1/customers/{customer_id}/evaluate", operations={
        "post": _op("Evaluate a customer from the ledger and record the decision", "evaluate", ref("EvaluateRequest"),
                    201, [cid, _LOCALE], "evaluate", (400, 401, 403, 404, 422))})
    s.path("/v1/evaluate", operations={
        "post": _op("Evaluate a case sent in the body (ledger untouched; the decision is recorded)", "evaluate",
                    ref("CaseSchema"), 201, [_LOCALE], "evaluate", (400, 401, 403, 422))})
    s.path("/v1/events", operations={
        "post": _op("Post a ledger event (idempotent by event_id); each type's `data` has its own schema and "
                    "refuses unknown fields", "events:write", _event_schemas(s, plugin), 201, (),
                    "events", (400, 401, 403, 404, 409, 422))})
    s.path("/v1/credit-checks", operations={
        "post": _op("May this order go on credit? Optionally reserve the amount. A reserving check is decided as "
                    "of today; `as_of` other than today is a what-if for controller/admin keys, never reserved. "
                    "A retry with the same order id and body (same key) of a check that held or referred the order "
                    "answers the first decision again (header Idempotent-Replayed: true); another sales key's held order is 403; an invoiced, released or "
                    "expired order is 409 E_RESERVATION_CLOSED", "credit_checks:write",
                    ref("CreditCheckRequest"), 201, [_LOCALE], "credit checks", (400, 401, 403, 404, 409, 422, 503))})
    s.path("/v1/credit-checks/{order_id}", operations={
        "get": _answer(_op("Where a checked order stands (approved, referred, released, rejected, expired) and its "
                           "reservation; a salesperson reads the orders it checked", "credit_checks:read", None, 200,
                           [_path("order_id")], "credit checks", (401, 403, 404)), 200, ref("CreditOrder")),
        "delete": _op("Release a credit reservation (its owner, a controller or an admin)", "credit_checks:write",
                      None, 200, [_path("order_id")], "credit checks", (401, 403, 404, 503))})
    s.path("/v1/decisions", operations={
        "get": _op("The decision trail (cursor pagination; JSON, JSON Lines or CSV)", "decisions:read", None, 200,
                   [_query("customer"), _query("kind", {"type": "string", "enum": list(RECORD_KINDS)}),
                    _query("outcome", {"type": "string", "enum": list(RECORD_OUTCOMES)}),
                    _query("since", {"type": "string", "format": "date"}),
                    _query("until", {"type": "string", "format": "date"}), _query("cursor"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    _query("format", {"type": "string", "enum": ["json", "jsonl", "csv"]}), _LOCALE], "trail",
                   (401, 403, 422))})
    s.path("/v1/decisions/{decision_id}", operations={
        "get": _op("One decision with its facts (its reasons in the reader's locale)", "decisions:read", None, 200,
                   [_path("decision_id"), _LOCALE], "trail", (401, 403, 404, 422))})
    s.path("/v1/decisions/{decision_id}/replay", operations={
        "post": _op("Re-evaluate from the stored facts and policy version", "decisions:replay", None, 200,
                    [_path("decision_id")], "trail", (401, 403, 404, 409))})
    verify = _op("Verify the hash chains of the trail and that every signed checkpoint (docs/audit.md) still "
                 "matches the records it covers", "audit:verify", None, 200, (), "trail", (401, 403, 503))
    verify["responses"]["200"]["content"]["application/json"]["schema"] = ref("AuditVerifyResponse")
    s.path("/v1/audit/verify", operations={"get": verify})
    s.path("/v1/policies/active", operations={
        "get": _op("The live policy version and text", "policies:read", None, 200, (), "policies", (401, 403))})
    s.path("/v1/policies/{version}", operations={
        "get": _op("A stored policy version, by its hash or a unique prefix of at least 8 characters",
                   "policies:read", None, 200, [_path("version")], "policies", (401, 403, 404, 409, 422))})
    s.path("/v1/policies/validate", operations={
        "post": _op("Check a policy (same errors as `creditctl policy check`)", "policies:write",
                    ref("PolicyTextRequest"), 200, (), "policies", (400, 401, 403, 422))})
    s.path("/v1/policies/simulate", operations={
        "post": _op("What-if: the book under the active policy and a candidate, and what would change (recorded "
                    "as a `simulation` decision; nothing else is written)", "policies:write", ref("SimulateRequest"),
                    201, [_query("format", {"type": "string", "enum": ["json", "csv"]}),
                          _query("as_of", {"type": "string", "format": "date"})], "policies", (400, 401, 403, 422))})
    publish = _op("Validate, store and put a policy in force from `effective_from` (default today; a later day "
                  "schedules it, cancellable until then). 202: a proposal, with the active policy's "
                  "authority.four_eyes_publish, that another person approves: POST /v1/approvals/{id}/approve. "
                  "A YAML body takes source, effective_from and reason in the query string",
                  "policies:write", ref("PublishRequest"), 201,
                  [_query("effective_from", _DATE), _query("reason", {"type": "string", "maxLength": 1000}),
                   _query("source", {"type": "string", "maxLength": 512})], "policies", (400, 401, 403, 422))
    _answer(publish, 201, PUBLISHED)
    publish["responses"]["200"] = {"description": "unchanged: in force today, or already scheduled for that day",
                                   "content": {"application/json": {"schema": PUBLISHED}}}
    publish["responses"]["202"] = {"description": "proposed; waits for a second person",
                                   "content": {"application/json": {"schema": OBJECT}}}
    listing = _op("Every stored version (without text) and the activation timeline: which version is in force "
                  "on which day, the scheduled ones, who activated, scheduled or cancelled each and why",
                  "policies:read", None, 200, (), "policies", (401, 403))
    _answer(listing, 200, POLICY_LIST)
    s.path("/v1/policies", operations={"post": publish, "get": listing})
    s.components.schema("PolicyActivation", ACTIVATION)
    cancel = _op("Cancel a scheduled version before its effective date (a trail record with actor and reason); "
                 "one in force or cancelled is 409 E_ACTIVATION_CLOSED", "policies:write",
                 ref("CancelActivationRequest"), 200,
                 [{"name": "activation_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                 "policies", (400, 401, 403, 404, 409, 422))
    _answer(cancel, 200, ref("PolicyActivation"))
    s.path("/v1/policies/activations/{activation_id}/cancel", operations={"post": cancel})
    s.path("/v1/actions", operations={
        "get": _op("Collection actions", "actions:read", None, 200,
                   [_query("status", {"type": "string", "enum": ["open", "queued", "sent", "failed", "done", "closed", "cancelled"]}), _query("owner"),
                    _query("customer"), _query("cursor", {"type": "string", "pattern": r"^\d+$"}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})], "actions", (401, 403, 422))})
    s.path("/v1/actions/{action_id}/complete", operations={
        "post": _op("Record the outcome of a collection action", "actions:write", ref("ActionCompleteRequest"), 200,
                    [{"name": "action_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                    "actions", (400, 401, 403, 404, 409, 422))})
    doc = _op("Preview the document the action sends (reminder, written demand, lawyer's letter), rendered from "
              "the templates beside the policy", "actions:read", None, 200,
              [{"name": "action_id", "in": "path", "required": True, "schema": {"type": "integer"}},
               _query("format", {"type": "string", "enum": ["html", "txt", "pdf"]}),
               _query("locale", {"type": "string", "enum": ["zh_CN", "en"]})],
              "actions", (401, 403, 404, 409, 422, 503))
    doc["responses"]["200"]["content"] = {"text/html": {"schema": {"type": "string"}},
                                          "text/plain": {"schema": {"type": "string"}},
                                          "application/pdf": {"schema": {"type": "string", "format": "binary"}}}
    s.path("/v1/actions/{action_id}/document", operations={"get": doc})
    s.path("/v1/outbox", operations={
        "get": _op("The outbox: one message per automated action, its status (queued, sending, sent, failed, dead), "
                   "attempts, last error, next attempt, masked recipient, provider message id (docs/delivery.md)",
                   "actions:read", None, 200,
                   [_query("status", {"type": "string", "enum": ["queued", "sending", "sent", "failed", "dead"]}),
                    _query("customer", {"type": "string", "minLength": 1, "maxLength": 128}),
                    _query("action", {"type": "string", "pattern": r"^\d+$"}),
                    _query("cursor", {"type": "string", "pattern": r"^\d+$"}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})], "actions",
                   (401, 403, 422))})
    s.path("/v1/outbox/{delivery_id}/requeue", operations={
        "post": _op("Requeue a dead letter (mandatory reason): queued at once with the whole retry budget, its "
                    "action queued again, recorded in the customer's trail (kind delivery, outcome requeued); "
                    "409 E_DELIVERY_NOT_DEAD when the delivery is not dead, E_DELIVERY_OBSOLETE when its action "
                    "was closed meanwhile (docs/delivery.md)", "outbox:write", ref("ReferralRejectRequest"), 200,
                    [{"name": "delivery_id", "in": "path", "required": True,
                      "schema": {"type": "integer", "minimum": 1}}], "actions", (400, 401, 403, 404, 409, 422))})
    s.path("/v1/sweeps", operations={
        "post": _op("Run or resume the collections sweep for a day (synchronous); returns the run summary",
                    "sweeps:write", {"type": "object", "additionalProperties": False,
                                     "properties": {"as_of": {"type": "string", "format": "date"}}},
                    201, (), "sweeps", (400, 401, 403, 409, 422))})
    s.path("/v1/sweeps/{run_id}", operations={
        "get": _op("A sweep run: status, counts, errors", "sweeps:read", None, 200, [_path("run_id")], "sweeps",
                   (401, 403, 404))})
    _import_paths(s)
    _report_paths(s)
    _referral_paths(s, ref)
    _hold_paths(s, ref)
    _governance_paths(s, ref)
    _collection_record_paths(s, ref)
    _legal_case_paths(s, ref)
    s.path("/v1/reviews", operations={
        "get": _op("Review proposals waiting for a controller (limit or terms increases)", "reviews:read", None, 200,
                   (), "reviews", (401, 403)),
        "post": _op("Run the periodic credit review for a day; decreases apply at once, increases wait",
                    "reviews:write", {"type": "object", "additionalProperties": False,
                                      "properties": {"as_of": {"type": "string", "format": "date"}}},
                    201, (), "reviews", (400, 401, 403, 422))})
    s.path("/v1/customers/{customer_id}/review/approve", operations={
        "post": _op("Approve a customer's pending review proposal", "reviews:write", None, 200, [cid], "reviews",
                    (401, 403, 404, 409))})
    s.path("/healthz", operations={"get": _op("Liveness, the live policy version and whether the outbox moves "
                                              "(oldest waiting message's age, dead letters)", None, errors=())})
    s.path("/metrics", operations={"get": {"summary": "Prometheus metrics", "responses": {
        "200": {"description": "text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}})
    for name, schema in responses.COMPONENTS.items():
        s.components.schema(name, schema)
    out = s.to_dict()
    _declare_answers(out)
    return out


# The success answers of the operations whose answer shape is declared here rather than next to the
# operation: (method, path) → {status: schema or {media type: schema}}.
_R = responses
_ANSWERS = {
    ("get", "/v1/customers"): {200: _R.CUSTOMER_LIST},
    ("put", "/v1/customers/{customer_id}"): {201: _R.ref("CreditFile"), 200: _R.ref("CreditFile")},
    ("get", "/v1/customers/{customer_id}"): {200: _R.CUSTOMER_VIEW},
    ("post", "/v1/customers/{customer_id}/evaluate"): {201: _R.EVALUATION},
    ("post", "/v1/evaluate"): {201: _R.EVALUATION},
    ("post", "/v1/events"): {201: _R.EVENT_RESULT, 200: _R.EVENT_RESULT},
    ("post", "/v1/credit-checks"): {201: _R.CREDIT_CHECK},
    ("delete", "/v1/credit-checks/{order_id}"): {200: _R.RELEASED},
    ("get", "/v1/decisions"): {200: {"application/json": _R.TRAIL_PAGE, "application/x-ndjson": {"type": "string"},
                                     "text/csv": {"type": "string"}}},
    ("get", "/v1/decisions/{decision_id}"): {200: _R.ref("TrailRecord")},
    ("post", "/v1/decisions/{decision_id}/replay"): {200: _R.REPLAY},
    ("get", "/v1/policies/active"): {200: _R.POLICY_VERSION},
    ("get", "/v1/policies/{version}"): {200: _R.POLICY_VERSION},
    ("post", "/v1/policies/validate"): {200: _R.VALIDATION},
    ("post", "/v1/policies/simulate"): {201: {"application/json": _R.SIMULATION, "text/csv": {"type": "string"}}},
    ("post", "/v1/policies"): {201: _R.PUBLISHED, 200: _R.PUBLISHED, 202: _R.PUBLISHED},
    ("get", "/v1/actions"): {200: _R.ACTIONS_PAGE},
    ("post", "/v1/actions/{action_id}/complete"): {200: _R.ref("Action")},
    ("get", "/v1/outbox"): {200: _R.OUTBOX_PAGE},
    ("post", "/v1/outbox/{delivery_id}/requeue"): {200: _R.ref("Delivery")},
    ("post", "/v1/sweeps"): {201: _R.SWEEP},
    ("get", "/v1/sweeps/{run_id}"): {200: _R.SWEEP},
    ("get", "/v1/reports/aging"): {200: {"application/json": _R.AGING, "text/csv": {"type": "string"}}},
    ("get", "/v1/reports/overdue"): {200: _R.OVERDUE},
    ("get", "/v1/reports/dso"): {200: _R.DSO},
    ("get", "/v1/reports/collections"): {200: _R.COLLECTIONS},
    ("get", "/v1/reports/interest-accruals"): {200: {"application/json": _R.ACCRUALS, "text/csv": {"type": "string"}}},
    ("get", "/v1/customers/{customer_id}/statement"): {200: {"application/json": _R.STATEMENT,
                                                             "text/csv": {"type": "string"}}},
    ("get", "/v1/reviews"): {200: _R.REVIEWS},
    ("post", "/v1/reviews"): {201: _R.REVIEW_RUN},
    ("post", "/v1/customers/{customer_id}/review/approve"): {200: _R.REVIEW_APPROVED},
    ("get", "/healthz"): {200: _R.HEALTH},
}
_ERROR_ANSWER = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ERROR_MEANING = {400: "the body is not JSON, or not an object", 401: "no key, or an unknown or revoked one",
                  403: "the key's role may not do this", 404: "not found", 409: "conflicts with the current state",
                  413: "the body is too large", 415: "the body is not application/json",
                  422: "a field is invalid (named in `errors`)",
                  503: "the database is unreachable or busy: retry after the Retry-After header's seconds"}


def _declare_answers(out: dict) -> None:
    """Fill in the success answers of _ANSWERS, and the errors every operation can answer: any keyed
    operation 401, 403 and 503 (the database gone: answered with Retry-After); any with a JSON body
    also 400, 413, 415 and 422."""
    for (method, path), answers in _ANSWERS.items():
        responses_ = out["paths"][path][method]["responses"]
        for status, schema in answers.items():
            content = schema if all("/" in k for k in schema) else {"application/json": schema}
            described = responses_.get(str(status), {}).get("description", "success")
            responses_[str(status)] = {"description": described,
                                       "content": {m: {"schema": sch} for m, sch in content.items()}}
    for path, ops in out["paths"].items():
        for op in ops.values():
            codes = {401, 403, 503} if op.get("security") else set()
            body = op.get("requestBody", {}).get("content", {})
            if "application/json" in body:
                codes |= {400, 413, 415, 422}
            for code in sorted(codes):
                op["responses"].setdefault(str(code), dict(_ERROR_ANSWER))
            for code, answer in op["responses"].items():
                if answer.get("description") == "error" and int(code) in _ERROR_MEANING:
                    answer["description"] = _ERROR_MEANING[int(code)]


def docs_page() -> str:
    rows = []
    for path, ops in spec()["paths"].items():
        for method, op in ops.items():
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{path}</code></td>"
                        f"<td>{op.get('summary', '')}</td><td>{op.get('description', '')}</td></tr>")
    return ("<!doctype html><meta charset=utf-8><title>creditctl API</title>"
            "<style>body{font:14px sans-serif;margin:2em}td{padding:4px 10px;border-bottom:1px solid #ddd}</style>"
            "<h1>creditctl API</h1><p>Machine-readable: <a href=/openapi.json>/openapi.json</a>. "
            "Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>.</p><table>"
            + "".join(rows) + "</table>")


def swagger_page(assets: str) -> str:
    """/docs: Swagger UI (assets from the swagger-ui-bundle package, served under `assets`) over
    /openapi.json, and below it the plain table of every operation (readable without JavaScript)."""
    table = docs_page().split("<table>", 1)[1]
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>creditctl API</title>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<link rel=stylesheet href='{assets}/swagger-ui.css'>"
            "<style>body{margin:0;font:14px sans-serif}#all{margin:2em}td{padding:4px 10px;"
            "border-bottom:1px solid #ddd}</style></head><body><div id=swagger-ui></div>"
            f"<script src='{assets}/swagger-ui-bundle.js'></script>"
            "<script>window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true, "
            "persistAuthorization: false});</script>"
            "<details id=all><summary>All operations</summary><p>Machine-readable: <a href=/openapi.json>"
            "/openapi.json</a>. Authenticate with <code>Authorization: Bearer &lt;key&gt;</code> "
            "(<b>Authorize</b> above).</p><table>" + table + "</details></body></html>")
