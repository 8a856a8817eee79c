"""The one table from an error code to what each adapter answers: HTTP status and CLI exit code.

A code missing here is a bug (tests/test_architecture.py checks every code the code base raises).
CLI exit codes: 1 = the input or policy was refused, 2 = a usage or environment problem,
3 = not found, 4 = a conflict with the stored state, 5 = a dependency (engine, database) failed.
"""
from __future__ import annotations

from typing import NamedTuple


class Code(NamedTuple):
    http: int
    exit: int
    meaning: str


CODES: dict[str, Code] = {
    "E_BAD_REQUEST": Code(400, 2, "the request is not a JSON object, or has no body"),
    "E_MALFORMED_JSON": Code(400, 2, "the body is not valid JSON"),
    "E_BAD_HTTP": Code(400, 2, "the request line or a header is not valid HTTP, or the request line is too long"),
    "E_HEADERS_TOO_LARGE": Code(431, 2, "a request header, or the headers together, are too large"),
    "E_JSON_DEPTH": Code(400, 2, "the JSON body nests arrays and objects deeper than 32 levels"),
    "E_JSON_DUPLICATE_KEY": Code(400, 2, "a JSON object in the body has the same key twice"),
    "E_UNAUTHENTICATED": Code(401, 2, "no API key, or an unknown or revoked one"),
    "E_FORBIDDEN": Code(403, 2, "the key's role may not do this"),
    "E_NOT_FOUND": Code(404, 3, "no such resource"),
    "E_METHOD_NOT_ALLOWED": Code(405, 2, "the resource does not take this method"),
    "E_CONFLICT": Code(409, 4, "the request conflicts with the stored state"),
    "E_EVENT_CONFLICT": Code(409, 4, "an event id was already processed with another body"),
    "E_USER_EXISTS": Code(409, 4, "a console user of that name already exists"),
    "E_RESERVATION_CLOSED": Code(409, 4, "the order's reservation was invoiced, released or expired: never held again"),
    "E_NOT_REPLAYABLE": Code(409, 4, "the record is not a single decision that can be replayed"),
    "E_VERSION_AMBIGUOUS": Code(409, 4, "more than one policy version starts with that prefix"),
    "E_LEDGER_POLICY_MISMATCH": Code(409, 4, "the ledger's currency is not the active policy's"),
    "E_CSRF": Code(400, 2, "a console form was posted without its valid CSRF token"),
    "E_REFERRAL_OPEN": Code(409, 4, "the order has an open referral: a controller releases, rejects or rechecks it"),
    "E_REFERRAL_CLOSED": Code(409, 4, "the referral is no longer open (released, rejected or expired)"),
    "E_AUTHORITY_REQUIRED": Code(403, 2, "the key's authority level is below the level the release needs"),
    "E_NOT_ON_HOLD": Code(409, 4, "the customer is not on credit hold"),
    "E_ON_HOLD": Code(409, 4, "the customer or its group is on credit hold: lifted first, or the referral rejected"),
    "E_KEY_REVOKED": Code(409, 4, "the API key is revoked: it is never used, rotated or revoked again"),
    "E_SAME_PERSON": Code(403, 2, "separation of duties: the person who asked may not also release or approve"),
    "E_GRANT_AUTHORITY": Code(403, 2, "the key's authority level may not grant that much above the policy's limit"),
    "E_APPROVAL_CLOSED": Code(409, 4, "the approval was already approved or rejected"),
    "E_NO_GRANT": Code(409, 4, "the customer has no granted limit"),
    "E_ACTIVATION_CLOSED": Code(409, 4, "the policy activation took effect or was cancelled: only a scheduled one is cancelled"),
    "E_DECISION_FIELD": Code(403, 2, "the field decides credit: only its governed operation or a controller changes it"),
    "E_LEGAL_TRANSITION": Code(409, 4, "a legal case moves one way (referred → filed → judgment → enforcement → closed): "
                                       "not to that status from its own"),
    "E_TOO_LARGE": Code(413, 2, "the request body is too large"),
    "E_UNSUPPORTED_MEDIA_TYPE": Code(415, 2, "the body's media type is not accepted"),
    "E_INPUT_INVALID": Code(422, 1, "a field of the request is invalid"),
    "E_POLICY_INVALID": Code(422, 1, "the policy text has errors"),
    "E_IMPORT_INVALID": Code(422, 1, "an import file has bad rows; nothing was written"),
    "E_POLICY_CURRENCY": Code(422, 1, "the policy's currency is not the ledger's (the stored book's) currency"),
    "E_DOCUMENT_KIND": Code(409, 4, "the action sends no document to the customer (a call, a visit, a review)"),
    "E_DOCUMENT_NOTHING_DUE": Code(409, 4, "no open invoice is left for the document to name"),
    "E_DOCUMENT_INPUT": Code(422, 1, "the document's input is invalid"),
    "E_DOCUMENT_LOCALE": Code(422, 1, "no templates for that language"),
    "E_DOCUMENT_CONFIG": Code(503, 5, "the documents' configuration is incomplete (creditor, law firm)"),
    "E_DOCUMENT_TEMPLATE": Code(503, 5, "a document template is broken"),
    "E_DOCUMENT_FONT": Code(503, 5, "no CJK font is installed for PDF documents"),
    "E_DOCUMENT_RESOURCE": Code(503, 5, "a template refers to a file outside the template folder"),
    "E_DOCUMENT": Code(500, 5, "the document could not be rendered"),
    "E_INTERNAL": Code(500, 5, "an unexpected error; nothing was changed"),
    "E_ENGINE": Code(503, 5, "the rules engine failed; no decision was made"),
    "E_NO_POLICY": Code(503, 5, "no policy is active"),
    "E_DATABASE_UNAVAILABLE": Code(503, 5, "the database connection failed; retry (see Retry-After)"),
    "E_POLICY_TAMPERED": Code(503, 5, "a stored policy version's text does not hash to its version; refused"),
    "E_AUDIT_KEY": Code(503, 2, "the audit signing key or checkpoint log is missing or unreadable"),
    "E_DELIVERY_NOT_DEAD": Code(409, 4, "only a dead letter is requeued; this delivery is queued, sending, failed or sent"),
    "E_DELIVERY_OBSOLETE": Code(409, 4, "the delivery's action is no longer waiting for it (done, cancelled, sent)"),
    "E_DELIVERY_CONFIG": Code(503, 2, "the delivery configuration is incomplete or invalid (backend, secret, retry)"),
}


def http_status(code: str) -> int:
    found = CODES.get(code)
    return found.http if found else 500


def exit_code(code: str) -> int:
    found = CODES.get(code)
    return found.exit if found else 5
