"""The documents' own exception: a stable code (documented in docs/documents.md) and a message."""

from __future__ import annotations

from engine.errors import CreditctlError


class DocumentError(CreditctlError):
    """A document cannot be built or rendered: bad configuration, bad input, a broken template,
    no CJK font for a PDF. Never retried as is: someone has to fix the cause."""

    code = "E_DOCUMENT"

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")
