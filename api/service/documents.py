"""The document an action sends to the customer (reminder, written demand, lawyer's letter), built
from the ledger as of the action's due day and rendered from the templates beside the policy."""

from __future__ import annotations

from sqlalchemy import select

from engine.facts import build_facts
from rules.interest import compute as interest_due

from ..documents.context import Contact as DocumentContact
from ..documents.context import DocumentSettings, build_context
from ..documents.errors import DocumentError
from ..documents.render import DocumentRenderer
from ..errors import DomainError, not_found
from ..store.ledger import load_cases
from ..store.tables import Action, Contact, Customer
from .actions import MAX_ACTION_ID

FORMATS = ("html", "txt", "pdf")


def _contact(s, customer_id: str, channel: str) -> DocumentContact | None:
    rows = (
        s.execute(
            select(Contact).where(Contact.customer_id == customer_id).order_by(Contact.is_primary.desc(), Contact.id)
        )
        .scalars()
        .all()
    )
    best = next((c for c in rows if c.preferred_channel == channel), rows[0] if rows else None)
    if best is None:
        return None
    return DocumentContact(person=best.name, email=best.email, phone=best.mobile, address=best.address)


def action_document(ctx, action_id: int, fmt: str, settings: dict, templates: str, locale: str | None = None):
    """(media type, body) of the action's document in `fmt` (html, txt or pdf)."""
    if fmt not in FORMATS:
        raise DomainError("E_INPUT_INVALID", "the request is invalid", {"format": [f"one of {', '.join(FORMATS)}"]})
    try:
        rendered = render_action(ctx, action_id, settings, templates, locale, pdf=fmt == "pdf")
    except DocumentError as exc:
        raise DomainError(exc.code, exc.message) from None
    if fmt == "pdf":
        return "application/pdf", rendered.pdf
    if fmt == "html":
        return "text/html; charset=utf-8", rendered.html
    return "text/plain; charset=utf-8", f"{rendered.subject}\n\n{rendered.text}"


def render_action(
    ctx,
    action_id: int,
    settings: dict,
    templates: str,
    locale: str | None = None,
    *,
    pdf: bool = False,
    contact: DocumentContact | None = None,
):
    """The action's RenderedDocument (raises DocumentError), addressed to `contact` (default: the customer's
    contact for the action's channel, the primary one first)."""
    if not 0 < action_id <= MAX_ACTION_ID:
        raise not_found("action", action_id)
    with ctx.read_tx() as s:
        action = s.get(Action, action_id)
        if action is None:
            raise not_found("action", action_id)
        customer = s.get(Customer, action.customer_id)
        policy = ctx.registry.active(s)
        case = load_cases(s, [customer], policy.exponent, action.due_on)[customer.id].typed
        facts = build_facts(case, policy, action.due_on)
        if contact is None:
            contact = _contact(s, customer.id, action.channel)
    interest = {c.invoice_id: c.interest + c.fee for c in interest_due(policy.interest, facts.invoices)}
    doc_settings = DocumentSettings.from_mapping(settings)
    context = build_context(
        action,
        customer,
        facts.invoices,
        settings=doc_settings,
        as_of=action.due_on,
        currency=policy.currency,
        contact=contact,
        interest_minor=interest,
    )
    return DocumentRenderer(templates, doc_settings.default_locale).render(context, locale, pdf=pdf)
