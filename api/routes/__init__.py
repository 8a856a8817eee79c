"""One blueprint per resource, all under /v1 (system routes at the root)."""


def register(app):
    from . import actions, credit_checks, customers, decisions, evaluate, events, policies, reports, reviews, sweeps, system
    for module in (actions, credit_checks, customers, decisions, evaluate, events, policies, reports, reviews, sweeps):
        app.register_blueprint(module.bp, url_prefix="/v1")
    app.register_blueprint(system.bp)
