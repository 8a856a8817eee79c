"""GET /v1/actions/{id}/document: the document an action sends, rendered from the templates beside the
policy, in Chinese (default) or English, as HTML, text or a PDF with a CJK font."""

from __future__ import annotations

import io

import pypdf

from test_imports import _load_book


def _actions(api, **params):
    out = []
    for status in ("open", "queued", "sent"):
        out += api.get("/v1/actions", role="backoffice", params={"status": status, "limit": 1000, **params}).json()[
            "actions"
        ]
    return out


def test_an_actions_document_renders_in_chinese_and_english_as_html_text_and_pdf(fresh):
    assert _load_book(fresh, as_of="2026-11-22").status_code == 201
    assert fresh.post("/v1/sweeps", {"as_of": "2026-11-22"}, role="controller").status_code == 201
    actions = _actions(fresh)
    letter = next(a for a in actions if a["type"] in ("written_demand", "email_reminder"))
    customer = fresh.get(f"/v1/customers/{letter['customer_id']}").json()
    html = fresh.get(f"/v1/actions/{letter['id']}/document", role="backoffice")
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
    assert customer["name"] in html.text and "¥" in html.text
    text = fresh.get(f"/v1/actions/{letter['id']}/document", role="backoffice", params={"format": "txt"})
    assert text.status_code == 200 and customer["name"] in text.text
    english = fresh.get(
        f"/v1/actions/{letter['id']}/document", role="backoffice", params={"format": "txt", "locale": "en"}
    )
    assert english.status_code == 200 and english.text != text.text and "CN¥" in english.text
    pdf = fresh.get(f"/v1/actions/{letter['id']}/document", role="backoffice", params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    extracted = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert customer["name"] in extracted.replace(" ", "").replace("\n", "")


def test_actions_that_send_nothing_and_bad_formats_are_refused(fresh):
    assert _load_book(fresh, as_of="2026-11-22").status_code == 201
    assert fresh.post("/v1/sweeps", {"as_of": "2026-11-22"}, role="controller").status_code == 201
    call = next(a for a in _actions(fresh) if a["type"] in ("phone_call", "visit"))
    r = fresh.get(f"/v1/actions/{call['id']}/document", role="backoffice")
    assert r.status_code == 409 and r.json()["code"] == "E_DOCUMENT_KIND"
    bad = fresh.get(f"/v1/actions/{call['id']}/document", role="backoffice", params={"format": "docx"})
    assert bad.status_code == 422 and "format" in bad.json()["errors"]
    assert fresh.get("/v1/actions/999999/document", role="backoffice").status_code == 404
    assert fresh.get(f"/v1/actions/{call['id']}/document", role="sales").status_code == 403
