"""The Redactor: masking registered values in text, log records and GitHub's job log."""

from __future__ import annotations

import logging

import pytest

from expsync.model import Secret
from expsync.secrets import Redactor


def test_redacts_every_registered_value() -> None:
    r = Redactor()
    r.add("sk-alpha-1")
    r.add(Secret("sk-beta-2"))
    assert r.redact("a=sk-alpha-1, b=sk-beta-2, again sk-alpha-1") == "a=***, b=***, again ***"
    assert r.redact("nothing here") == "nothing here"


def test_values_shorter_than_four_characters_are_ignored() -> None:
    r = Redactor()
    r.add("abc")
    r.add("")
    assert len(r) == 0
    assert r.redact("abc abcd") == "abc abcd"
    assert list(r.github_mask_lines()) == []


def test_a_value_containing_another_is_masked_whole() -> None:
    r = Redactor()
    r.add("sk-1234")
    r.add("sk-1234-extended")
    assert r.redact("[sk-1234-extended]") == "[***]"


def test_escaped_forms_inside_json_or_repr_are_masked() -> None:
    r = Redactor()
    r.add('sk-"quoted"\nline2')
    assert r.redact('{"k": "sk-\\"quoted\\"\\nline2"}') == '{"k": "***"}'
    assert "line2" not in r.redact("second line alone: line2")


def test_empty_redactor_returns_text_unchanged() -> None:
    assert Redactor().redact("sk-anything") == "sk-anything"


def test_repr_never_shows_values() -> None:
    r = Redactor()
    r.add("sk-hidden-value")
    assert "sk-hidden-value" not in repr(r)


def test_github_add_mask_lines_one_per_line_with_percent_escaped() -> None:
    r = Redactor()
    r.add("sk-single")
    r.add("-----BEGIN KEY-----\nMIIEabc%0A\n\n-----END KEY-----\n")
    r.add("sk-single")  # registered twice, masked once
    assert list(r.github_mask_lines()) == [
        "::add-mask::sk-single",
        "::add-mask::-----BEGIN KEY-----",
        "::add-mask::MIIEabc%250A",
        "::add-mask::-----END KEY-----",
    ]


def test_logging_filter_redacts_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    r = Redactor()
    r.add("sk-logged-secret")
    caplog.handler.addFilter(r.logging_filter())
    logger = logging.getLogger("some.library")
    with caplog.at_level(logging.DEBUG):
        logger.debug("response body: %r", {"SecretString": "sk-logged-secret"})
        try:
            raise ValueError("bad value sk-logged-secret")
        except ValueError:
            logger.exception("failed with %s", "sk-logged-secret")
    assert "sk-logged-secret" not in caplog.text
    assert "response body: {'SecretString': '***'}" in caplog.text
    assert "ValueError: bad value ***" in caplog.text


def test_logging_filter_registered_before_values_still_masks_later_values(caplog: pytest.LogCaptureFixture) -> None:
    r = Redactor()
    caplog.handler.addFilter(r.logging_filter())
    r.add("sk-added-later")
    with caplog.at_level(logging.INFO):
        logging.getLogger("x").info("value %s", "sk-added-later")
    assert caplog.records[0].getMessage() == "value ***"
