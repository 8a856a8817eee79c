"""One blueprint per resource, all under /v1 (system routes at the root)."""

from . import (
    actions,
    credit_checks,
    credit_file,
    customers,
    decisions,
    evaluate,
    events,
    governance,
    imports,
    keys,
    legal_cases,
    outbox,
    policies,
    referrals,
    reports,
    reviews,
    sweeps,
    system,
)

_V1 = (
    actions,
    credit_checks,
    credit_file,
    customers,
    decisions,
    evaluate,
    events,
    imports,
    policies,
    referrals,
    reports,
    reviews,
    sweeps,
    outbox,
    keys,
    governance,
    legal_cases,
)


def register(app):
    for module in _V1:
        app.register_blueprint(module.bp, url_prefix="/v1")
    app.register_blueprint(system.bp)
