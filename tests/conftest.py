import pathlib

import pytest

from engine import compile_policy

from helpers import make_case as _make_case

ROOT = pathlib.Path(__file__).resolve().parent.parent
POLICY_PATH = ROOT / "policies.yaml"


@pytest.fixture(scope="session")
def policy_text() -> str:
    return POLICY_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def policy(policy_text):
    """The shipped policy, compiled once for the whole session."""
    compiled = compile_policy(policy_text, str(POLICY_PATH))
    yield compiled
    compiled.dispose()


@pytest.fixture
def make_case():
    """Builds a customer case dict: make_case(customer(...), invoices=[invoice(...)], payments=[...])."""
    return _make_case
