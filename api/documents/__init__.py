"""Customer documents (催收文书): reminders, written demands, lawyer's letters, statements of account.

context: DocumentContext and its builders (from an action row + customer + open invoices, or from a
statement); render: DocumentRenderer (Jinja2 sandbox → subject, text, HTML, SMS; WeasyPrint → PDF);
check: check_templates (for `creditctl policy check`). Layout of the template folder: docs/documents.md.
"""

from .check import check_templates
from .context import (
    ACTION_DOCUMENTS,
    KINDS,
    STATEMENT,
    Contact,
    Creditor,
    CustomerParty,
    DocumentContext,
    DocumentSettings,
    InvoiceLine,
    LawFirm,
    Statement,
    StatementLine,
    build_context,
    build_statement_context,
    document_kind,
    reference_for,
)
from .errors import DocumentError
from .render import DocumentRenderer, RenderedDocument, cjk_fonts, default_folder, render_pdf

__all__ = [
    "ACTION_DOCUMENTS",
    "KINDS",
    "STATEMENT",
    "Contact",
    "Creditor",
    "CustomerParty",
    "DocumentContext",
    "DocumentError",
    "DocumentRenderer",
    "DocumentSettings",
    "InvoiceLine",
    "LawFirm",
    "RenderedDocument",
    "Statement",
    "StatementLine",
    "build_context",
    "build_statement_context",
    "check_templates",
    "cjk_fonts",
    "default_folder",
    "document_kind",
    "reference_for",
    "render_pdf",
]
