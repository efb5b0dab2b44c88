"""The rules package split into modules (issue 18): maildesk.rules.engine still offers what the
rest of maildesk imports from it, and every operator has its compile function."""

from __future__ import annotations

import maildesk.rules.engine as engine
from maildesk.rules import operators
from maildesk.rules.facts import domains_of


def test_engine_still_offers_what_maildesk_imports_from_it():
    for name in ("Known", "MailFacts", "Routing", "RuleSet", "compile_rules", "iter_templates",
                 "_literal_sets", "_lowered_forms", "_regex_literals"):
        assert hasattr(engine, name), name
    assert all(hasattr(engine, name) for name in engine.__all__)


def test_every_operator_has_exactly_one_compile_function():
    on_argument, on_strings = set(operators._ON_ARGUMENT), set(operators._ON_STRINGS)
    assert not on_argument & on_strings
    assert on_argument | on_strings == set(operators.OPERATORS)


def test_domains_of_an_address_from_the_most_specific():
    assert domains_of("a@X.y.example.com") == ["x.y.example.com", "y.example.com",
                                               "example.com", "com"]
    assert domains_of("no-domain@") == []
