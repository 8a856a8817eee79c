"""Rendering: Jinja2 templates (sandboxed, strict) → subject, plain text, HTML, SMS text; HTML → PDF.

Templates are written by credit controllers, so they run in Jinja's immutable sandbox (no access to
Python internals, no mutation of the context) with StrictUndefined (a misspelt name fails the render
instead of printing nothing into a legal letter). PDFs come from WeasyPrint, which may read files
below the template folder only (a logo, a stylesheet) and nothing over the network.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import pathlib
import subprocess
from dataclasses import dataclass
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, pass_context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .money import currency_exponent

from .context import KINDS, DocumentContext
from .errors import DocumentError

DEFAULT_LOCALE = "zh_CN"
# file name of each part of a document: <locale>/<kind><suffix>
PARTS = {"subject": ".subject.j2", "text": ".txt.j2", "html": ".html.j2", "sms": ".sms.j2"}
# documents a channel may send by SMS also need their short `sms` part
REQUIRED_PARTS = {
    kind: ("subject", "text", "html") + (("sms",) if kind.endswith("_reminder") else ()) for kind in KINDS
}
# names every template may read besides the context's fields
RENDER_GLOBALS = frozenset({"locale"})
# the CSS font stacks name these; without one installed, Chinese renders as empty boxes
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Serif CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei")


def default_folder(policy_path: str | os.PathLike) -> pathlib.Path:
    """The template folder ships beside the policy file: <dir of policies.yaml>/templates."""
    return pathlib.Path(policy_path).resolve().parent / "templates"


def _autoescape(name: str | None) -> bool:
    return bool(name) and name.endswith(".html.j2")


@pass_context
def _money(ctx, minor, currency: str | None = None) -> str:
    """Integer minor units → the locale's currency format (zh_CN ¥100,000.00, en CN¥100,000.00)."""
    if type(minor) is not int:
        raise DocumentError("E_DOCUMENT_INPUT", f"money filter needs integer minor units, got {type(minor).__name__}")
    currency = currency or ctx["currency"]
    return format_currency(Decimal(minor).scaleb(-currency_exponent(currency)), currency, locale=ctx["locale"])


@pass_context
def _date(ctx, value, fmt: str = "long") -> str:
    """A date in the locale's form: zh_CN 2026年12月15日, en December 15, 2026 (fmt: short, medium, long, full)."""
    if not isinstance(value, dt.date):
        raise DocumentError("E_DOCUMENT_INPUT", f"date filter needs a date, got {type(value).__name__}")
    return format_date(value, fmt, locale=ctx["locale"])


def make_environment(folder: str | os.PathLike) -> ImmutableSandboxedEnvironment:
    """The one environment templates are rendered and checked with."""
    env = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(folder), encoding="utf-8"),
        undefined=StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["money"] = _money
    env.filters["date"] = _date
    return env


def normalise_locale(locale: str) -> str:
    """'zh-CN' → 'zh_CN'; an identifier Babel does not know is refused (it could format nothing)."""
    locale = locale.replace("-", "_")
    try:
        Locale.parse(locale)
    except (ValueError, TypeError, UnknownLocaleError):
        raise DocumentError("E_DOCUMENT_LOCALE", f"unknown locale '{locale}'") from None
    return locale


@dataclass(frozen=True)
class RenderedDocument:
    kind: str
    locale: str  # the locale formatted with (the templates may be its language's, e.g. en)
    reference: str
    subject: str
    text: str
    html: str
    sms: str | None = None  # only for kinds with an sms part
    pdf: bytes | None = None  # when asked for

    @property
    def pdf_filename(self) -> str:
        return f"{self.kind}-{self.reference}.pdf"


class DocumentRenderer:
    """Renders DocumentContexts from one template folder (layout: docs/documents.md)."""

    def __init__(self, folder: str | os.PathLike, default_locale: str = DEFAULT_LOCALE):
        self.folder = pathlib.Path(folder).resolve()
        if not self.folder.is_dir():
            raise DocumentError("E_DOCUMENT_CONFIG", f"template folder {self.folder} does not exist")
        self.env = make_environment(self.folder)
        self.default_locale = normalise_locale(default_locale)

    def template_locale(self, locale: str) -> str:
        """The folder that serves `locale`: its own (zh_CN), else its language's (en_GB → en)."""
        parsed = Locale.parse(locale)
        for candidate in (locale, f"{parsed.language}_{parsed.territory}", parsed.language):
            if (self.folder / candidate).is_dir():
                return candidate
        raise DocumentError("E_DOCUMENT_LOCALE", f"no templates for locale '{locale}' in {self.folder}")

    def render(self, context: DocumentContext, locale: str | None = None, *, pdf: bool = False) -> RenderedDocument:
        locale = normalise_locale(locale or self.default_locale)
        folder = self.template_locale(locale)
        values = {**context.template_vars(), "locale": locale}
        parts: dict[str, str | None] = {}
        for part, suffix in PARTS.items():
            name = f"{folder}/{context.kind}{suffix}"
            if part not in REQUIRED_PARTS[context.kind] and not (self.folder / name).is_file():
                parts[part] = None
                continue
            try:
                parts[part] = self.env.get_template(name).render(values)
            except DocumentError:
                raise
            except TemplateError as exc:  # StrictUndefined, sandbox refusals, missing templates
                line = getattr(exc, "lineno", None)
                where = f"{name}:{line}" if line else name
                raise DocumentError("E_DOCUMENT_TEMPLATE", f"{where}: {exc}") from exc
        # a subject is one header line whatever the template's whitespace (no header injection)
        subject = " ".join(parts["subject"].split())
        sms = parts["sms"].strip() if parts["sms"] is not None else None
        html = parts["html"]
        return RenderedDocument(
            kind=context.kind,
            locale=locale,
            reference=context.reference,
            subject=subject,
            text=parts["text"].strip() + "\n",
            html=html,
            sms=sms,
            pdf=render_pdf(html, self.folder) if pdf else None,
        )


# ---------------------------------------------------------------------------------------- PDF
@functools.cache
def _fetcher_class():
    from weasyprint.urls import URLFetcher

    class FolderFetcher(URLFetcher):
        """Serves file: URLs below one folder (and data: URLs); refuses the network and the rest of the disk."""

        def __init__(self, folder: pathlib.Path):
            super().__init__(allowed_protocols=("file", "data"), allow_redirects=False, fail_on_errors=True)
            self.root = folder

        def fetch(self, url, headers=None):
            if url.startswith("file:"):
                from urllib.request import url2pathname

                path = pathlib.Path(url2pathname(url.split("?")[0].removeprefix("file:"))).resolve()
                if not path.is_relative_to(self.root):
                    raise ValueError(f"{url} is outside the template folder")
            return super().fetch(url, headers)

    return FolderFetcher


@functools.cache
def cjk_fonts() -> tuple[str, ...]:
    """Installed font families that cover Chinese (fontconfig), e.g. ('Noto Sans CJK SC', …)."""
    try:
        out = subprocess.run(
            ["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(sorted({name.strip() for line in out.splitlines() for name in line.split(",") if name.strip()}))


def render_pdf(html: str, folder: str | os.PathLike) -> bytes:
    """An HTML document → PDF bytes (A4; page setup in the template's CSS). Refuses to render without a
    CJK font: a letter whose Chinese came out as boxes must not be sent."""
    if not set(cjk_fonts()) & set(CJK_FAMILIES):
        raise DocumentError(
            "E_DOCUMENT_FONT",
            f"no CJK font installed (want one of {', '.join(CJK_FAMILIES)}; "
            f"Debian: fonts-noto-cjk, installed by make setup)",
        )
    import weasyprint  # imported late: loading Pango costs ~0.3 s, and only PDFs need it
    from weasyprint.urls import FatalURLFetchingError

    root = pathlib.Path(folder).resolve()
    try:
        doc = weasyprint.HTML(string=html, base_url=root.as_uri() + "/", url_fetcher=_fetcher_class()(root))
        return doc.write_pdf()
    except FatalURLFetchingError as exc:  # a BaseException: keep it from escaping as one
        raise DocumentError("E_DOCUMENT_RESOURCE", f"{exc} ({exc.__cause__})") from None
