"""Use cases: one function per thing a user does, over a unit of work (context.Context), raising
status-free domain errors (api/errors.py). The HTTP API, the CLI and the jobs all call these."""
