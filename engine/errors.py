"""Errors as values: every problem carries a stable code and where it came from.

Policy problems are collected (up to a cap) by the compiler and raised together as
PolicyInvalid; input problems (facts, orders) raise InputInvalid naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PolicyError:
    code: str
    message: str
    path: str = ""  # YAML path, e.g. credit.limits[2].when.field
    file: str = "<policy>"
    line: int = 0  # 1-based; 0 when unknown
    column: int = 0

    def format(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.code}: {self.message}" + (
            f" (at {self.path})" if self.path else ""
        )

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "message": self.message,
            "path": self.path,
            "file": self.file,
            "line": self.line,
            "column": self.column,
        }


class CreditctlError(Exception):
    """Root of the project's own exceptions; `code` is stable and documented."""

    code = "E_INTERNAL"


class PolicyInvalid(CreditctlError):
    code = "E_POLICY_INVALID"

    def __init__(self, errors: list[PolicyError]):
        self.errors = list(errors)
        super().__init__("; ".join(e.format() for e in self.errors[:5]))


@dataclass(frozen=True)
class InputError:
    field: str
    code: str
    message: str

    def to_dict(self) -> dict:
        return {"field": self.field, "code": self.code, "message": self.message}


class InputInvalid(CreditctlError):
    code = "E_INPUT_INVALID"

    def __init__(self, errors: list[InputError]):
        self.errors = list(errors)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors[:5]))

    def by_field(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for e in self.errors:
            out.setdefault(e.field, []).append(e.message)
        return out


class EngineFailure(CreditctlError):
    """durable_rules refused or failed an evaluation: the decision fails closed."""

    code = "E_ENGINE"
