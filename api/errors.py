"""Domain errors: a stable code, a message and the fields at fault; no HTTP status.

Every layer (store, service, jobs, reports) raises these; the adapters translate a code with the
one table in api/codes.py (HTTP status for the API, exit code for the CLI).
"""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, code: str, message: str, errors: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.errors = code, message, errors or {}

    def body(self) -> dict:
        return {"code": self.code, "message": self.message, "errors": self.errors}


def not_found(what: str, ident) -> DomainError:
    return DomainError("E_NOT_FOUND", f"{what} '{ident}' not found")


def invalid(errors: dict, message: str = "the request is invalid") -> DomainError:
    return DomainError("E_INPUT_INVALID", message, errors)


def conflict(message: str, code: str = "E_CONFLICT") -> DomainError:
    return DomainError(code, message)


def engine_failed(exc: Exception, what: str = "no decision was made") -> DomainError:
    return DomainError("E_ENGINE", f"the rules engine failed; {what}: {exc}")


def marshmallow_errors(messages, prefix: str = "") -> dict:
    """marshmallow's nested messages → {"a.b[2].c": [...]}."""
    from engine.facts import flatten_messages

    out: dict = {}
    for e in flatten_messages(messages, prefix):
        out.setdefault(e.field, []).append(e.message)
    return out
