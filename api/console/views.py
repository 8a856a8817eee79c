"""The console's pages. Each view: check the signed-in person's permission (the API's table), read
through api/reports or call one use case, render a template (a partial for an htmx request)."""

from __future__ import annotations

import csv
import datetime as dt
import glob
import io
import json
import os
import uuid
import time
from decimal import Decimal
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import format_date, format_datetime, format_decimal, gettext
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from marshmallow import ValidationError
from wtforms.validators import ValidationError as WTFValidationError

from engine.compiler import compile_policy
from engine.errors import PolicyInvalid
from engine.reasons import normal_locale
from engine.policytest import run_file

from ..codes import http_status
from ..errors import DomainError, invalid, marshmallow_errors
from ..jobs import simulate as simulate_job
from ..jobs import sweep
from ..reports import book
from ..reports import console as views_data
from ..reports import figures
from ..service import actions, auth, decisions, events, policies, referrals, users
from ..service.validation import DATE_MAX, DATE_MIN
from ..http.schemas import (
    CONDITION_TYPES,
    ActionCompleteRequest,
    EventRequest,
    ReferralRejectRequest,
    ReferralReleaseRequest,
)

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static", static_url_path="/static")

# (endpoint, label, permission): the navigation, each entry shown only to roles that may open it
NAV = (
    ("console.overview", "Overview", "reports:read"),
    ("console.customers", "Customers", "customers:read"),
    ("console.worklist", "Worklist", "actions:read"),
    ("console.referrals", "Referrals", "referrals:read"),
    ("console.policy", "Policy", "policies:read"),
    ("console.trail", "Trail", "audit:verify"),
    ("console.runs", "Sweeps and jobs", "sweeps:read"),
)
PUBLIC = {"console.sign_in", "console.static", "console.language"}
OUTCOMES = ("contacted", "promised", "paid", "no_answer", "disputed", "escalated")
CHANNELS = ("phone", "email", "sms", "visit", "letter")


def ctx():
    return current_app.extensions["creditctl"]


def may(permission: str) -> bool:
    user = g.get("user")
    return user is not None and user.role in auth.PERMISSIONS[permission]


def need(permission: str) -> auth.Principal:
    auth.require(g.user, permission)
    return g.user


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def as_of_arg() -> dt.date:
    """The page's explicit evaluation date (?as_of=, default: the service's today)."""
    raw = request.values.get("as_of") or ""
    if not raw:
        return ctx().today()
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise invalid({"as_of": ["an ISO date (YYYY-MM-DD)"]}) from None
    if not DATE_MIN <= day <= DATE_MAX:
        raise invalid({"as_of": [f"between {DATE_MIN} and {DATE_MAX}"]})
    return day


# ---------------------------------------------------------------------------------------- session
@bp.before_request
def _session():
    now = current_app.config["CONSOLE_CLOCK"]()
    g.user = None
    name = session.get("user")
    if name:
        if now - session.get("seen", 0) > current_app.config["CONSOLE_IDLE_SECONDS"]:
            session.clear()
            g.expired = True
        else:
            found = (
                users.current(ctx(), name)
                if session.get("kind") == "user"
                else (users.key_principal(ctx(), name), session.get("locale"))
            )
            if found[0] is None:
                session.clear()
            else:
                g.user, g.locale = found[0], found[1] or session.get("locale")
                session["seen"] = now
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token") or request.headers.get("X-CSRFToken"))
        except (WTFValidationError, CSRFError) as exc:
            raise DomainError(
                "E_CSRF", f"the form's CSRF token is missing or invalid ({exc}); reload the page"
            ) from None
    if g.user is None and request.endpoint not in PUBLIC:
        if is_htmx():
            return Response("", 401, headers={"HX-Redirect": url_for("console.sign_in")})
        return redirect(url_for("console.sign_in", expired=1 if g.get("expired") else None))


@bp.app_template_global()
def csrf_token() -> str:
    return generate_csrf()


@bp.context_processor
def _globals():
    nav = [(ep, gettext(label)) for ep, label, perm in NAV if may(perm)]
    return {"nav": nav, "user": g.get("user"), "may": may, "locale": str(_current_locale())}


def _reader_locale() -> str:
    """The locale decisions' reasons are rendered in for the console's user (zh_CN → zh)."""
    return normal_locale(str(_current_locale()))


def _current_locale():
    from flask_babel import get_locale

    return get_locale()


@bp.app_template_filter("money")
def _money(value) -> str:
    if value is None or value == "":
        return "—"
    return format_decimal(Decimal(str(value)), format="#,##0.00")


@bp.app_template_filter("day")
def _day(value) -> str:
    if not value:
        return "—"
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    return format_date(value, "medium")


@bp.app_template_filter("when")
def _when(value) -> str:
    if not value:
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.rstrip("Z"))
    return format_datetime(value, "short") + " UTC"


@bp.app_template_filter("pretty_json")
def _pretty_json(value) -> str:
    """Facts and results as an auditor reads them: indented, keys sorted, Chinese as written (not \\u escapes);
    Jinja escapes the text for the page."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    status = http_status(exc.code)
    if is_htmx():  # shown above the page, whatever the form's own target was
        return render_template("_error.html", error=exc), status, {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"}
    return render_template("error.html", error=exc), status


@bp.errorhandler(ValidationError)
def _validation(exc: ValidationError):
    return _domain_error(invalid(marshmallow_errors(exc.messages)))


@bp.get("/")
def home():
    for endpoint, _label, perm in NAV:
        if may(perm):
            return redirect(url_for(endpoint))
    return render_template("error.html", error=DomainError("E_FORBIDDEN", gettext("Your role has no pages."))), 403


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    error = None
    if request.method == "POST":
        try:
            key = (request.form.get("api_key") or "").strip()
            if key:
                principal = auth.authenticate(
                    current_app.extensions["creditctl.keys"], ctx().read_tx, f"Bearer {key}", ctx().clock()
                )
                kind, locale = "key", request.cookies.get("creditctl_lang") or users.DEFAULT_LOCALE
            else:
                principal, locale = users.sign_in(ctx(), request.form.get("name", ""), request.form.get("password", ""))
                kind = "user"
        except DomainError:
            error = gettext("Unknown user or wrong password, or an unknown or revoked API key.")
        else:
            session.clear()  # a new session (and CSRF token) at every sign-in
            session.update(user=principal.name, kind=kind, locale=locale, seen=current_app.config["CONSOLE_CLOCK"]())
            session.permanent = False
            return redirect(url_for("console.home"))
    return render_template("sign_in.html", error=error, expired=request.args.get("expired")), 401 if error else 200


@bp.post("/sign-out")
def sign_out():
    session.clear()
    return redirect(url_for("console.sign_in"))


@bp.post("/language")
def language():
    locale = request.form.get("locale", "")
    if locale not in users.LOCALES:
        raise invalid({"locale": [f"one of {', '.join(users.LOCALES)}"]})
    if g.user is not None:
        session["locale"] = locale
        if session.get("kind") == "user":
            users.set_locale(ctx(), g.user.name, locale)
    target = request.form.get("next") or url_for("console.home")
    response = redirect(target if target.startswith("/console") else url_for("console.home"))
    response.set_cookie(
        "creditctl_lang", locale, max_age=365 * 86400, httponly=True, samesite="Lax", secure=request.is_secure
    )
    return response


# ---------------------------------------------------------------------------------------- overview
@bp.get("/overview")
def overview():
    """The cheap parts at once; the book figures (one pass over the whole book) come in by htmx."""
    need("reports:read")
    as_of = as_of_arg()
    svc = ctx()
    return render_template(
        "overview.html",
        as_of=as_of,
        stages=views_data.stages(svc),
        alerts=views_data.alerts_of_day(svc, svc.today(), locale=_reader_locale()),
        runs=views_data.runs(svc, 5),
    )


FIGURES_SECONDS = 300  # how long live book figures are reused (per process, as_of, policy)
LIVE_FIGURES_MAX = 5000  # customers: a book this small without a snapshot is read whole for the figures


@bp.get("/overview/figures")
def overview_figures():
    """The sweep's snapshot for the day under the active policy (api/reports/figures.py); without one, a
    small book's figures computed live (and reused a few minutes); a large book's latest snapshot, said to
    be of another day or policy, or a note that the next sweep brings them."""
    need("reports:read")
    as_of = as_of_arg()
    svc = ctx()
    with svc.read_tx() as s:
        version = svc.registry.active(s).version
    snap = figures.latest_snapshot(svc, as_of, version)
    if snap is not None:
        return render_template("_overview_figures.html", f=snap["figures"], snap=snap, live=False)
    if figures.book_size(svc) <= current_app.config.get("CONSOLE_LIVE_FIGURES_MAX", LIVE_FIGURES_MAX):
        cache = current_app.extensions.setdefault("creditctl.console.figures", {})
        ttl = current_app.config.get("CONSOLE_FIGURES_SECONDS", FIGURES_SECONDS)
        key, now = (as_of, version), time.monotonic()
        hit = cache.get(key)
        if hit is None or now - hit[0] >= ttl:
            if len(cache) > 32:
                cache.clear()
            hit = cache[key] = (now, views_data.book_figures(svc, as_of), svc.clock())
        return render_template("_overview_figures.html", f=hit[1], computed_at=hit[2], live=True)
    older = figures.latest_snapshot(svc)
    return render_template(
        "_overview_figures.html", f=older["figures"] if older else None, snap=older, live=False, stale=True, as_of=as_of
    )


# ---------------------------------------------------------------------------------------- customers
def _int_arg(name: str, default=None, low=0, high=10**6):
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise invalid({name: [f"a whole number from {low} to {high}"]})
    return int(raw)


LIST_ARGS = ("q", "bucket", "tier", "reputation", "stage", "segment", "collector", "hold", "sort", "dir")


@bp.get("/customers")
def customers():
    need("customers:read")
    args = {k: request.args.get(k, "").strip() for k in LIST_ARGS}
    data = views_data.customers(ctx(), {**args, "cursor": request.args.get("cursor", "")})
    query = {k: v for k, v in args.items() if v != ""}

    def list_url(cursor=None):
        return url_for("console.customers") + "?" + urlencode({**query, **({"cursor": cursor} if cursor else {})})

    with ctx().read_tx() as s:
        classes = ctx().registry.active(s).band_classes
        labels = {
            k: list(classes[c].labels)
            for k, c in (("bucket", "aging_bucket"), ("tier", "amount_tier"), ("reputation", "reputation"))
        }
    template = "_customer_rows.html" if is_htmx() else "customers.html"
    return render_template(
        template,
        data=data,
        args=args,
        list_url=list_url,
        labels=labels,
        first_page=bool(request.args.get("cursor")),
        segments=views_data.segments(ctx()),
        collectors=views_data.collectors(ctx()),
        stages=range(0, 4),
    )


@bp.get("/customers/<customer_id>")
def customer(customer_id):
    need("customers:read")
    as_of = as_of_arg()
    from ..service.customers import get_customer

    file = get_customer(ctx(), customer_id, as_of)
    decision = views_data.current_decision(ctx(), customer_id, as_of, locale=_reader_locale())
    credit = decision["credit"]
    limit = Decimal(credit["limit"])
    exposure = Decimal(credit["exposure"])
    used_pct = min(100, int(exposure * 100 / limit)) if limit else 100
    return render_template(
        "customer.html",
        c=file,
        d=decision,
        as_of=as_of,
        used_pct=used_pct,
        timeline=views_data.timeline(ctx(), customer_id),
        statement_from=(as_of.replace(day=1) - dt.timedelta(days=1)).replace(day=1),
    )


@bp.get("/customers/<customer_id>/statement.csv")
def statement(customer_id):
    need("reports:read")
    try:
        start = dt.date.fromisoformat(request.args.get("from", ""))
        end = dt.date.fromisoformat(request.args.get("to", ""))
    except ValueError:
        raise invalid({"from": ["from and to: ISO dates"]}) from None
    if end < start:
        raise invalid({"to": ["on or after from"]})
    st = book.statement(ctx(), customer_id, start, end)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(book.STATEMENT_CSV_COLUMNS)
    w.writerows(book.statement_csv_rows(st))
    return Response(
        out.getvalue(),
        200,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="statement-{customer_id}-{start}-{end}.csv"'},
    )


# ---------------------------------------------------------------------------------------- worklist
@bp.get("/worklist")
def worklist():
    need("actions:read")
    owner = request.args.get("owner", "").strip() or None
    return render_template(
        "worklist.html",
        rows=views_data.worklist(ctx(), owner=owner),
        owner=owner or "",
        outcomes=OUTCOMES,
        channels=CHANNELS,
    )


@bp.post("/actions/<int:action_id>/complete")
def complete(action_id):
    user = need("actions:write")
    body = ActionCompleteRequest().load(
        {
            k: v
            for k, v in {
                "outcome": request.form.get("outcome", ""),
                "channel": request.form.get("channel") or None,
                "note": request.form.get("note") or None,
            }.items()
            if v is not None
        }
    )
    done = actions.complete_action(ctx(), action_id, body, user.name)
    return render_template("_action_done.html", a=done)


@bp.post("/actions/<int:action_id>/record")
def record_from_action(action_id):
    """A promise to pay or a dispute of the action's invoice, as the event the API takes (POST /v1/events:
    the same use case, decided and recorded in the trail with the signed-in person as actor)."""
    user = need("events:write")
    a = views_data.action(ctx(), action_id)
    today = ctx().today().isoformat()
    kind = request.form.get("record", "")
    if kind == "promise":
        data = {
            "invoice_id": a["invoice_id"],
            "amount": request.form.get("amount", "").strip(),
            "made_on": today,
            "promised_on": request.form.get("promised_on", "").strip(),
        }
        event_type = "promise_to_pay"
    elif kind == "dispute":
        reason = request.form.get("reason", "").strip()
        if not reason:
            raise invalid({"reason": ["a dispute needs its reason"]})
        data, event_type = {"invoice_id": a["invoice_id"], "opened_on": today, "reason": reason}, "dispute_opened"
    else:
        raise invalid({"record": ["promise or dispute"]})
    raw = {"event_id": f"console-{uuid.uuid4().hex}", "type": event_type, "customer_id": a["customer_id"], "data": data}
    _status, response = events.post_event(ctx(), raw, EventRequest().load(raw), user.name, g.request_id)
    return render_template("_recorded.html", a=a, kind=kind, data=data, decision_id=json.loads(response)["decision_id"])


# ---------------------------------------------------------------------------------------- referrals
@bp.get("/referrals", endpoint="referrals")  # the function is not named so: the service module is
def referrals_page():
    user = need("referrals:read")
    return render_template(
        "referrals.html", data=views_data.referral_queue(ctx(), held=user.authority), conditions=CONDITION_TYPES
    )


def _release_request() -> dict:
    """The row's form: a reason and at most one condition (type, amount, note), as the API's request body."""
    body = {"reason": request.form.get("reason", "")}
    kind = request.form.get("condition", "").strip()
    if kind:
        condition = {"type": kind}
        for name in ("amount", "note"):
            value = request.form.get(f"condition_{name}", "").strip()
            if value:
                condition[name] = value
        body["conditions"] = [condition]
    return ReferralReleaseRequest().load(body)


@bp.post("/referrals/<referral_id>/release")
def referral_release(referral_id):
    user = need("referrals:write")
    done = referrals.release(ctx(), referral_id, _release_request(), user, g.request_id)
    return render_template("_referral_done.html", r=done, outcome=done["status"])


@bp.post("/referrals/<referral_id>/reject")
def referral_reject(referral_id):
    user = need("referrals:write")
    body = ReferralRejectRequest().load({"reason": request.form.get("reason", "")})
    done = referrals.reject(ctx(), referral_id, body, user, g.request_id)
    return render_template("_referral_done.html", r=done, outcome=done["status"])


@bp.post("/referrals/<referral_id>/recheck")
def referral_recheck(referral_id):
    user = need("referrals:write")
    got = referrals.recheck(ctx(), referral_id, user, g.request_id)
    return render_template(
        "_referral_done.html",
        r=got["referral"],
        outcome=got["outcome"],
        reasons=got["reasons"],
        decision_id=got["decision_id"],
    )


# ---------------------------------------------------------------------------------------- policy
def _policy_source() -> str:
    return f"console:{g.user.name}"


def _check(text: str):
    """(policy errors as dicts, version or None)."""
    try:
        compiled = compile_policy(text, "draft.yaml")
    except PolicyInvalid as exc:
        return [e.to_dict() for e in exc.errors], None
    version = compiled.version
    compiled.dispose()
    return [], version


@bp.get("/policy")
def policy():
    need("policies:read")
    return render_template("policy.html", active=policies.active(ctx()), as_of=ctx().today())


@bp.post("/policy/check")
def policy_check():
    need("policies:read")
    text = request.form.get("text", "")
    errors, version = _check(text)
    return render_template("_policy_check.html", errors=errors, version=version)


@bp.post("/policy/test")
def policy_test():
    need("policies:read")
    text = request.form.get("text", "")
    errors, _ = _check(text)
    if errors:
        return render_template("_policy_check.html", errors=errors, version=None)
    compiled = compile_policy(text, "draft.yaml")
    folder = os.path.join(os.path.dirname(os.path.abspath(current_app.config["POLICY_FILE"])), "tests", "policy")
    results = []
    try:
        for path in sorted(glob.glob(os.path.join(folder, "*.yaml"))):
            results += run_file(compiled, path)
    finally:
        compiled.dispose()
    failed = [r for r in results if not r.passed]
    return render_template("_policy_tests.html", passed=len(results) - len(failed), failed=failed)


@bp.post("/policy/simulate")
def policy_simulate():
    user = need("policies:write")
    text = request.form.get("text", "")
    errors, _ = _check(text)
    if errors:
        return render_template("_policy_check.html", errors=errors, version=None)
    spool = simulate_job.ChangeSpool()
    try:
        decision_id, summary = simulate_job.simulate(
            ctx(), text, _policy_source(), as_of_arg(), actor=user.name, request_id=g.request_id, sink=spool
        )
    finally:
        spool.close()
    return render_template("_policy_simulation.html", decision_id=decision_id, s=summary)


@bp.post("/policy/publish")
def policy_publish():
    user = need("policies:write")
    text = request.form.get("text", "")
    errors, _ = _check(text)
    if errors:
        return render_template("_policy_check.html", errors=errors, version=None)
    result, changed = policies.publish(ctx(), text, _policy_source(), user.name, user)  # four-eyes applies
    return render_template("_policy_published.html", r=result, changed=changed)


# ---------------------------------------------------------------------------------------- trail
@bp.get("/trail")
def trail():
    need("audit:verify")
    f = {k: request.args.get(k, "").strip() for k in ("customer", "kind", "outcome", "since", "until")}
    dates = {}
    for k in ("since", "until"):
        if f[k]:
            try:
                dates[k] = dt.date.fromisoformat(f[k])
            except ValueError:
                raise invalid({k: ["an ISO date (YYYY-MM-DD)"]}) from None
    rows, cursor = decisions.list_decisions(
        ctx(),
        customer=f["customer"] or None,
        kind=f["kind"] or None,
        outcome=f["outcome"] or None,
        since=dates.get("since"),
        until=dates.get("until"),
        cursor=request.args.get("cursor") or None,
        limit=50,
    )
    more = (
        url_for("console.trail") + "?" + urlencode({**{k: v for k, v in f.items() if v}, "cursor": cursor})
        if cursor
        else None
    )
    return render_template("trail.html", rows=rows, f=f, more=more)


@bp.get("/decisions/<decision_id>")
def decision(decision_id):
    need("decisions:replay")  # the trail's readers (sales reads only its own checks, through the API)
    rec = decisions.get_decision(ctx(), decision_id)
    # the reasons in the user's locale (zh_CN → zh; a record of format 1 keeps its English text)
    d = decisions.decision_views(ctx(), [rec], include_facts=True, locale=_reader_locale())[0]
    return render_template("decision.html", d=d)


@bp.post("/decisions/<decision_id>/replay")
def replay(decision_id):
    need("decisions:replay")
    return render_template("_replay.html", r=decisions.replay(ctx(), decision_id))


@bp.post("/trail/verify")
def verify():
    need("audit:verify")
    return render_template("_verify.html", r=decisions.verify(ctx()))


# ---------------------------------------------------------------------------------------- runs
@bp.get("/runs")
def runs():
    need("sweeps:read")
    return render_template("runs.html", runs=views_data.runs(ctx()), today=ctx().today())


@bp.post("/sweeps")
def start_sweep():
    user = need("sweeps:write")
    result = sweep.run_sweep(ctx(), as_of_arg(), f"console:{user.name}")
    return render_template("_sweep_done.html", r=result)
