"""One error shape for every failure: {code, message, errors: {field: [messages]}}."""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, errors: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors or {}

    def body(self) -> dict:
        return {"code": self.code, "message": self.message, "errors": self.errors}


def not_found(what: str, ident) -> ApiError:
    return ApiError(404, "E_NOT_FOUND", f"{what} '{ident}' not found")


def invalid(errors: dict, message: str = "the request is invalid") -> ApiError:
    return ApiError(422, "E_INPUT_INVALID", message, errors)


def conflict(message: str, code: str = "E_CONFLICT") -> ApiError:
    return ApiError(409, code, message)


def marshmallow_errors(messages, prefix: str = "") -> dict:
    """marshmallow's nested messages → {"a.b[2].c": [...]}."""
    from engine.facts import flatten_messages
    out: dict = {}
    for e in flatten_messages(messages, prefix):
        out.setdefault(e.field, []).append(e.message)
    return out
