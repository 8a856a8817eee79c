"""Documents: context builders, rendering in zh_CN and en (Babel money and dates), the sandbox and
strict undefined names, template checks (FILE:LINE:COL: CODE), and real PDFs read back with poppler
and pypdf (Chinese text present, a CJK font embedded). Rendered samples go to var/test-artifacts/."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import pathlib
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from pypdf import PdfReader

from api.documents import (
    Creditor,
    DocumentError,
    DocumentRenderer,
    DocumentSettings,
    KINDS,
    LawFirm,
    build_context,
    build_statement_context,
    check_templates,
    document_kind,
)
from api.documents.samples import AS_OF, CUSTOMER, INVOICES, SAMPLE_STATEMENT, SETTINGS, sample_action, sample_context
from engine import evaluate
from api.documents.money import to_minor

from helpers import customer as customer_dict, facts_for, invoice as invoice_dict, make_case

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
ARTIFACTS = ROOT / "var" / "test-artifacts"


@pytest.fixture(scope="module")
def renderer():
    return DocumentRenderer(TEMPLATES)


def _copy_templates(tmp_path) -> pathlib.Path:
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    return folder


# ---------------------------------------------------------------------------------------- context
def test_the_action_types_that_speak_to_the_customer_have_a_document_and_the_others_none():
    assert {
        t: document_kind(t)
        for t in ("payment_reminder", "email_reminder", "sms_reminder", "written_demand", "lawyer_letter")
    } == {
        "payment_reminder": "payment_reminder",
        "email_reminder": "overdue_reminder",
        "sms_reminder": "overdue_reminder",
        "written_demand": "written_demand",
        "lawyer_letter": "lawyer_letter",
    }
    for internal in ("phone_call", "visit", "litigation", "asset_preservation", "write_off_review"):
        assert document_kind(internal) is None
        with pytest.raises(DocumentError) as err:
            build_context(
                SimpleNamespace(**{**vars(sample_action("written_demand")), "type": internal}),
                CUSTOMER,
                INVOICES,
                settings=SETTINGS,
                as_of=AS_OF,
                currency="CNY",
            )
        assert err.value.code == "E_DOCUMENT_KIND"


def test_a_demand_lists_the_overdue_collectable_invoices_most_overdue_first_with_totals_and_deadline():
    ctx = sample_context("lawyer_letter")
    assert [(i.invoice_id, i.days_overdue, i.open_minor) for i in ctx.invoices] == [
        ("INV-1001", 106, 10_000_000),
        ("INV-1002", 36, 2_050_050),
    ]  # INV-1003 is not due yet
    assert (ctx.total_open_minor, ctx.total_interest_minor, ctx.total_due_minor) == (12_050_050, 536_776, 12_586_826)
    assert ctx.max_days_overdue == 106
    assert ctx.deadline == AS_OF + dt.timedelta(days=7)
    assert ctx.law_firm == SETTINGS.law_firm and ctx.creditor == SETTINGS.creditor
    assert ctx.reference == "C-2002-lawyer_letter-2-20261215-INV-1001"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.total_due_minor = 0


def test_a_paused_invoice_is_not_demanded_and_a_reminder_lists_only_its_own_invoice():
    paused = [SimpleNamespace(**{**vars(i), "paused": "dispute" if i.id == "INV-1002" else None}) for i in INVOICES]
    ctx = build_context(
        sample_action("written_demand"), CUSTOMER, paused, settings=SETTINGS, as_of=AS_OF, currency="CNY"
    )
    assert [i.invoice_id for i in ctx.invoices] == ["INV-1001"]
    reminder = sample_context("payment_reminder")
    assert [i.invoice_id for i in reminder.invoices] == ["INV-1003"]
    assert reminder.deadline == dt.date(2026, 12, 18) and reminder.invoices[0].days_overdue == -3


def test_money_must_be_integer_minor_units():
    floats = [SimpleNamespace(**{**vars(INVOICES[0]), "open_minor": 100000.0})]
    with pytest.raises(DocumentError) as err:
        build_context(sample_action("written_demand"), CUSTOMER, floats, settings=SETTINGS, as_of=AS_OF, currency="CNY")
    assert err.value.code == "E_DOCUMENT_INPUT"


def test_a_lawyers_letter_needs_a_law_firm_and_nothing_overdue_is_nothing_to_demand():
    with pytest.raises(DocumentError) as err:
        build_context(
            sample_action("lawyer_letter"),
            CUSTOMER,
            INVOICES,
            settings=dataclasses.replace(SETTINGS, law_firm=None),
            as_of=AS_OF,
            currency="CNY",
        )
    assert err.value.code == "E_DOCUMENT_CONFIG"
    with pytest.raises(DocumentError) as err:
        build_context(
            sample_action("written_demand"),
            CUSTOMER,
            INVOICES,
            settings=SETTINGS,
            as_of=dt.date(2026, 8, 1),
            currency="CNY",
        )
    assert err.value.code == "E_DOCUMENT_NOTHING_DUE"


def test_settings_from_configuration():
    s = DocumentSettings.from_mapping(
        {
            "creditor": {"name": "华东精密机械有限公司", "bank_account": "123"},
            "law_firm": {"name": "明诚律师事务所", "lawyer": "李明"},
            "deadline_days": {"written_demand": 10},
        }
    )
    assert s.creditor == Creditor(name="华东精密机械有限公司", bank_account="123")
    assert s.law_firm == LawFirm(name="明诚律师事务所", lawyer="李明")
    assert s.deadline_days["written_demand"] == 10 and s.deadline_days["lawyer_letter"] == 7
    for bad in (
        {},
        {"creditor": {"name": "x"}, "deadline_days": {"written_demand": 1.5}},
        {"creditor": {"name": "x"}, "law_firm": {"name": "no lawyer"}},
    ):
        with pytest.raises(DocumentError) as err:
            DocumentSettings.from_mapping(bad)
        assert err.value.code == "E_DOCUMENT_CONFIG"


def test_the_context_builds_from_the_engines_own_facts_and_actions(policy, renderer):
    """The builder's input as the integrator will have it: the ledger's InvoiceStates and an action row
    from a real decision (a medium account entering stage 2 today sends a lawyer's letter)."""
    as_of = dt.date(2026, 11, 22)
    case = make_case(
        customer_dict(id="C-77", name="宁波海港物流有限公司"),
        invoices=[invoice_dict("INV-9", "50000.00", due=-31), invoice_dict("INV-10", "8000.00", due=5)],
    )
    data = evaluate(policy, case, as_of).data
    letter = next(a for a in data["dunning"]["actions"] if a["type"] == "lawyer_letter")
    row = SimpleNamespace(
        id=7,
        customer_id="C-77",
        invoice_id=letter["invoice_id"],
        type=letter["type"],
        channel=letter["channel"],
        stage=letter["stage"],
        due_on=dt.date.fromisoformat(letter["due_on"]),
        amount_minor=to_minor(letter["amount"], 2),
    )
    interest = {i["invoice_id"]: to_minor(i["interest"], 2) for i in data["interest"]["invoices"]}
    facts = facts_for(policy, case, as_of)
    ctx = build_context(
        row,
        SimpleNamespace(id="C-77", name="宁波海港物流有限公司"),
        facts.invoices,
        settings=SETTINGS,
        as_of=as_of,
        currency="CNY",
        interest_minor=interest,
    )
    assert [(i.invoice_id, i.days_overdue, i.open_minor) for i in ctx.invoices] == [("INV-9", 31, 5_000_000)]
    assert ctx.total_interest_minor == interest["INV-9"] == 65_000  # 50,000 × 0.05 % × (31 − 5) days
    doc = renderer.render(ctx)
    assert "宁波海港物流有限公司" in doc.text and "¥50,000.00" in doc.text and "¥650.00" in doc.text


def test_a_statement_context_converts_the_reports_decimal_strings_exactly():
    ctx = sample_context("statement")
    st = ctx.statement
    assert (st.opening_minor, st.payments_minor, st.closing_minor) == (15_000_000, 2_949_950, 13_250_050)
    assert [(ln.type, ln.credit_minor, ln.balance_minor) for ln in st.lines] == [
        ("payment", 2_949_950, 12_050_050),
        ("invoice", 0, 13_250_050),
    ]
    assert ctx.total_open_minor == 13_250_050 and ctx.deadline is None
    bad = {**SAMPLE_STATEMENT, "opening_balance": "1.005"}
    with pytest.raises(ValueError):
        build_statement_context(bad, settings=SETTINGS, as_of=AS_OF)


# ---------------------------------------------------------------------------------------- rendering
def test_lawyers_letter_in_chinese_names_the_parties_each_invoice_the_deadline_and_the_consequences(renderer):
    doc = renderer.render(sample_context("lawyer_letter"))
    assert doc.locale == "zh_CN"
    for part in (doc.text, doc.html):
        for expected in (
            "律师函",
            "上海明诚律师事务所",
            "李明律师",
            "华东精密机械有限公司",
            "杭州远航贸易有限公司",
            "INV-1001",
            "INV-1002",
            "¥100,000.00",
            "¥20,500.50",
            "¥5,050.00",
            "¥125,868.26",
            "2026年12月22日",
            "2026年8月31日",
            "106",
            "法律后果",
            "提起诉讼",
            "财产保全",
            "中国工商银行上海张江支行",
        ):
            assert expected in part, expected
    assert "已逾期 106 天" in doc.text and "已逾期 36 天" in doc.text
    assert "INV-1003" not in doc.text  # not yet due: not demanded
    assert doc.subject == "律师函:上海明诚律师事务所受华东精密机械有限公司委托就欠款 ¥125,868.26 致杭州远航贸易有限公司"
    assert doc.sms is None and doc.pdf is None


def test_english_documents_format_money_and_dates_the_english_way(renderer):
    doc = renderer.render(sample_context("written_demand"), "en")
    assert "CN¥100,000.00" in doc.text and "CN¥125,868.26" in doc.text
    assert "December 22, 2026" in doc.text and "August 31, 2026" in doc.text
    assert "杭州远航贸易有限公司" in doc.text  # Chinese names stay as they are
    assert doc.subject == "Formal demand for payment: CN¥125,868.26 overdue, to be paid by December 22, 2026"
    british = renderer.render(sample_context("written_demand"), "en-GB")  # en templates, British dates
    assert british.locale == "en_GB" and "22 December 2026" in british.text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_kind_renders_in_both_locales_with_a_one_line_subject(renderer, kind, locale):
    doc = renderer.render(sample_context(kind), locale)
    assert doc.subject and "\n" not in doc.subject
    assert "杭州远航贸易有限公司" in doc.text and "杭州远航贸易有限公司" in doc.html
    assert doc.html.lstrip().startswith("<!DOCTYPE html>") and "{{" not in doc.html + doc.text
    assert (doc.sms is not None) == kind.endswith("_reminder")
    money = "¥" if locale == "zh_CN" else "CN¥"
    assert f"{money}{'12,000.00' if kind == 'payment_reminder' else '100,000.00'}" in doc.text


def test_reminder_sms_is_short_chinese_text(renderer):
    doc = renderer.render(sample_context("overdue_reminder"))
    assert doc.sms == (
        "【华东精密机械有限公司】杭州远航贸易有限公司您好,贵司有2笔款项已逾期,未付合计¥120,500.50,"
        "最长逾期106天,请于2026年12月22日前付款。如已付款请忽略。"
    )
    assert len(doc.sms) <= 140


def test_html_escapes_what_the_customer_record_says_and_text_keeps_it(renderer):
    ctx = dataclasses.replace(
        sample_context("overdue_reminder"), customer=dataclasses.replace(CUSTOMER_PARTY, name="<b>恶意</b> & Co")
    )
    doc = renderer.render(ctx)
    assert "&lt;b&gt;恶意&lt;/b&gt; &amp; Co" in doc.html and "<b>恶意</b>" not in doc.html
    assert "<b>恶意</b> & Co" in doc.text


CUSTOMER_PARTY = sample_context("overdue_reminder").customer


def test_a_misspelt_name_fails_the_render_instead_of_printing_nothing(tmp_path):
    folder = _copy_templates(tmp_path)
    (folder / "zh_CN" / "written_demand.txt.j2").write_text(
        "致:{{ customer.name }}\n欠款 {{ totl_due_minor }}\n", encoding="utf-8"
    )
    with pytest.raises(DocumentError) as err:
        DocumentRenderer(folder).render(sample_context("written_demand"))
    assert err.value.code == "E_DOCUMENT_TEMPLATE" and "totl_due_minor" in err.value.message


def test_templates_cannot_reach_python_internals(tmp_path):
    folder = _copy_templates(tmp_path)
    (folder / "zh_CN" / "written_demand.txt.j2").write_text(
        "{{ creditor.__class__.__init__.__globals__ }}", encoding="utf-8"
    )
    with pytest.raises(DocumentError) as err:
        DocumentRenderer(folder).render(sample_context("written_demand"))
    assert err.value.code == "E_DOCUMENT_TEMPLATE"


def test_unknown_locales_and_locales_without_templates_are_refused(renderer):
    for locale in ("xx_YY", "fr"):
        with pytest.raises(DocumentError) as err:
            renderer.render(sample_context("written_demand"), locale)
        assert err.value.code == "E_DOCUMENT_LOCALE"


# ---------------------------------------------------------------------------------------- template checks
def test_the_shipped_templates_pass_the_check():
    assert check_templates(TEMPLATES) == []


def test_an_unknown_variable_is_reported_with_file_line_and_column(tmp_path):
    folder = _copy_templates(tmp_path)
    path = folder / "zh_CN" / "lawyer_letter.txt.j2"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = "尊敬的 {{ custmer.name }}:"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert [e.format() for e in check_templates(folder)] == [
        f"{path}:3:8: E_TEMPLATE_UNKNOWN_VARIABLE: unknown variable 'custmer'; did you mean 'customer'?"
    ]


def test_an_unknown_field_is_found_through_loops_and_records(tmp_path):
    folder = _copy_templates(tmp_path)
    path = folder / "en" / "_invoices.txt.j2"
    path.write_text(
        "{% for inv in invoices %}\n{{ inv.amount | money }} {{ inv.due_on | date }}\n{% endfor %}\n"
        "{{ creditor.contact.emial }} {{ statement.lines }}\n",
        encoding="utf-8",
    )
    assert [e.format() for e in check_templates(folder)] == [
        f"{path}:2:8: E_TEMPLATE_UNKNOWN_FIELD: 'inv.amount': InvoiceLine has no field 'amount'; "
        f"did you mean 'amount_minor'?",
        f"{path}:4:21: E_TEMPLATE_UNKNOWN_FIELD: 'creditor.contact.emial': Contact has no field 'emial'; "
        f"did you mean 'email'?",
    ]


def test_syntax_errors_and_unknown_filters_are_reported_with_their_line(tmp_path):
    folder = _copy_templates(tmp_path)
    broken = folder / "zh_CN" / "written_demand.html.j2"
    broken.write_text("<p>{{ customer.name }}</p>\n{% if deadline %}\n<p>{{ deadline | date }}</p>\n", encoding="utf-8")
    filtered = folder / "en" / "statement.txt.j2"
    filtered.write_text("Balance\n{{ statement.closing_minor | monee }}\n", encoding="utf-8")
    errors = check_templates(folder)
    assert [(e.file, e.line, e.code) for e in errors] == [
        (str(filtered), 2, "E_TEMPLATE_SYNTAX"),
        (str(broken), 3, "E_TEMPLATE_SYNTAX"),
    ]  # where the file ends
    assert "No filter named 'monee'" in errors[0].message
    assert "endif" in errors[1].message


def test_missing_parts_stray_files_and_a_missing_default_locale_are_reported(tmp_path):
    folder = _copy_templates(tmp_path)
    (folder / "en" / "lawyer_letter.sms.j2").write_text("not a part of a letter", encoding="utf-8")
    (folder / "en" / "payment_reminder.sms.j2").rename(folder / "en" / "payment_remindr.sms.j2")
    got = {(e.code, e.message) for e in check_templates(folder)}
    assert (
        "E_TEMPLATE_MISSING",
        "locale 'en' has no 'payment_reminder.sms.j2'; did you mean 'payment_remindr.sms.j2'?",
    ) in got
    assert (
        "E_TEMPLATE_UNKNOWN_FILE",
        "'payment_remindr.sms.j2' is no document part (partials start with '_'); "
        "did you mean 'payment_reminder.sms.j2'?",
    ) in got
    assert len(got) == 2  # an optional part (lawyer_letter.sms) is no error
    shutil.rmtree(folder / "zh_CN")
    assert ("E_TEMPLATE_MISSING", "no folder for the default locale 'zh_CN'") in {
        (e.code, e.message) for e in check_templates(folder)
    }


def test_a_template_that_only_fails_when_rendered_is_caught_on_a_sample(tmp_path):
    folder = _copy_templates(tmp_path)
    path = folder / "zh_CN" / "statement.txt.j2"
    path.write_text("对账单\n{{ customer.name }}\n请于 {{ deadline | date }} 前回复\n", encoding="utf-8")
    errors = check_templates(folder)
    assert [(e.file, e.line, e.code) for e in errors] == [(str(path), 3, "E_TEMPLATE_RENDER")]
    assert "date filter needs a date, got NoneType" in errors[0].message


# ---------------------------------------------------------------------------------------- PDF
def _pdf_text(pdf: bytes, tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def _embedded_fonts(pdf: bytes) -> set[str]:
    fonts = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            descriptor = (descendants[0].get_object() if descendants else font)["/FontDescriptor"].get_object()
            if any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                fonts.add(str(font["/BaseFont"]))
    return fonts


def _save_artifacts(name: str, pdf: bytes) -> None:
    """For a reviewer: the PDF and a PNG of each page (pdftoppm), under var/test-artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "80", "-png", str(ARTIFACTS / f"{name}.pdf"), str(ARTIFACTS / name)], check=True)


@pytest.mark.parametrize("kind", ["lawyer_letter", "written_demand", "statement"])
def test_a_chinese_pdf_carries_the_chinese_text_in_an_embedded_cjk_font(renderer, tmp_path, kind):
    doc = renderer.render(sample_context(kind), pdf=True)
    assert doc.pdf.startswith(b"%PDF-")
    text = _pdf_text(doc.pdf, tmp_path, kind)
    for expected in ("杭州远航贸易有限公司", "华东精密机械有限公司", "¥100,000.00", "¥20,500.50"):
        assert expected in text, expected
    if kind == "lawyer_letter":
        for expected in ("律", "上海明诚律师事务所", "¥125,868.26", "2026年12月22日", "财产保全"):
            assert expected in text, expected
    fonts = _embedded_fonts(doc.pdf)
    assert fonts and all("CJK" in f for f in fonts), fonts
    _save_artifacts(f"{kind}-zh_CN", doc.pdf)
    assert (ARTIFACTS / f"{kind}-zh_CN-1.png").stat().st_size > 10_000


def test_an_english_pdf_keeps_chinese_names_readable(renderer, tmp_path):
    doc = renderer.render(sample_context("lawyer_letter"), "en", pdf=True)
    text = _pdf_text(doc.pdf, tmp_path, "en")
    assert "Lawyer's letter" in text and "CN¥125,868.26" in text and "杭州远航贸易有限公司" in text
    _save_artifacts("lawyer_letter-en", doc.pdf)


def test_a_pdf_may_not_read_files_outside_the_template_folder(tmp_path):
    folder = _copy_templates(tmp_path)
    secret = tmp_path / "secret.css"
    secret.write_text("body { color: red }", encoding="utf-8")
    path = folder / "zh_CN" / "written_demand.html.j2"
    path.write_text(
        path.read_text(encoding="utf-8").replace("</h1>", f'</h1><link rel="stylesheet" href="{secret.as_uri()}">'),
        encoding="utf-8",
    )
    with pytest.raises(DocumentError) as err:
        DocumentRenderer(folder).render(sample_context("written_demand"), pdf=True)
    assert err.value.code == "E_DOCUMENT_RESOURCE" and "outside the template folder" in err.value.message


def test_the_command_line_check_prints_each_problem_and_exits_1(tmp_path, capsys):
    from api.documents.check import main

    assert main([str(TEMPLATES)]) == 0 and capsys.readouterr().out == ""
    folder = _copy_templates(tmp_path)
    path = folder / "en" / "overdue_reminder.subject.j2"
    path.write_text("Overdue: {{ totl_open_minor | money }}\n", encoding="utf-8")
    assert main([str(folder)]) == 1
    assert capsys.readouterr().out == (
        f"{path}:1:13: E_TEMPLATE_UNKNOWN_VARIABLE: unknown variable "
        f"'totl_open_minor'; did you mean 'total_open_minor'?\n"
    )
