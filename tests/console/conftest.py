"""Fixtures of the console tests: they live in console_harness.py, which the tests also import helpers from
(a module named conftest would clash with tests/api/conftest.py when both folders run together)."""

from console_harness import *  # noqa: F401,F403
