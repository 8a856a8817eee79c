"""The import template: one sheet per kind with its header row (English keys; the Chinese headers
are accepted too), and a notes sheet (说明) that the importer skips."""

from __future__ import annotations

import io

from .columns import KINDS

_FORMATS = {
    "text": "text",
    "date": "date YYYY-MM-DD",
    "amount": "amount, digits with a decimal point: 30000.00",
    "int": "whole number",
    "list": "values separated by ;",
    "bool": "yes/no (是/否)",
    "instalments": "DATE=AMOUNT;DATE=AMOUNT, e.g. 2026-12-31=5000.00;2027-01-31=5000.00",
}


def template_xlsx() -> bytes:
    import openpyxl
    from openpyxl.styles import Font

    book = openpyxl.Workbook()
    notes = book.active
    notes.title = "说明 notes"
    notes.append(["sheet", "column", "中文列名", "required", "format"])
    for kind in KINDS.values():
        sheet = book.create_sheet(kind.name)
        sheet.append([c.key for c in kind.columns])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for c in kind.columns:
            notes.append([kind.name, c.key, c.zh, "yes" if c.required else "", _FORMATS[c.kind]])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
