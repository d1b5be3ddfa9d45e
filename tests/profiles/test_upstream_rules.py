"""What each gateway profile accepts in an upstream and a document, from the sheet's examples
(shared/spec/gateway-profiles.md §2, §3, §8, §11). Each rule runs under both profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from expsync.desired.schema import gateway_parses_url, utf16_len
from expsync.profiles import PROFILES
from tests.profiles.helpers import codes, doc, validate, with_upstream

BOTH = sorted(PROFILES)

#: sheet §2: refused by the gateway's `new URL()` (Node 20, Ada 2.9.2)
GATEWAY_REFUSES = [
    "https://999.1.1.1/v1",
    "https://1.2.3.4.5/v1",
    "https://exa<mple.com/v1",
    "exa^mple",
    "exa|mple",
    "https://xn--a.example/v1",
    "https://xn--/",
    "https://api.example%2F/v1",
    "https://ex%00ample.com/v1",
    "https://x.example:99999/",
]
#: the same host characters inside an otherwise good http URL
GATEWAY_REFUSES += ["https://exa^mple.com/v1", "https://exa|mple.com/v1"]

#: the gateway accepts these, expsync refuses them on purpose (README "Gateway profiles")
STRICTER = [
    "ftp://files.example/v1",
    "mailto:ops@example.com",
    "file:///etc/passwd",
    "http:example.com",
    "https://user:pw@api.example/v1",
    " https://api.example/v1",
    "https://api.example/v1 ",
    "https://api.example/v1?api_key=abc",
]

ACCEPTED = [
    "https://api.partner.example/v1",
    "http://10.0.0.7:8080/v1",
    "https://[::1]:8443/v1",
    "https://xn--mnchen-3ya.example/v1",
    "https://münchen.example/v1",
    "https://x.example:65535/",
]


@pytest.mark.parametrize("profile", BOTH)
@pytest.mark.parametrize("url", GATEWAY_REFUSES)
def test_base_url_the_gateway_cannot_parse_is_refused(tmp_path: Path, profile: str, url: str) -> None:
    assert not gateway_parses_url(url)
    diags = validate(tmp_path, with_upstream(base_url=url), profile)
    assert codes(diags) == ["E114"]
    assert diags[0].path == "variants[0].upstream.base_url" and "gateway" in diags[0].message


@pytest.mark.parametrize("profile", BOTH)
@pytest.mark.parametrize("url", STRICTER)
def test_base_url_strictness_beyond_the_gateway_is_intended(tmp_path: Path, profile: str, url: str) -> None:
    # the gateway would accept (and trim) these; expsync refuses them as documented safe strictness
    assert gateway_parses_url(url)
    diags = validate(tmp_path, with_upstream(base_url=url), profile)
    assert codes(diags) == ["E114"] and "gateway" not in diags[0].message


@pytest.mark.parametrize("profile", BOTH)
@pytest.mark.parametrize("url", ACCEPTED)
def test_good_base_urls_pass(tmp_path: Path, profile: str, url: str) -> None:
    assert validate(tmp_path, with_upstream(base_url=url), profile) == []


def test_xn_labels_must_be_valid_idna() -> None:
    # the caveat: ada-url 4.0.0 itself accepts these two; the check on top refuses them
    import ada_url

    assert ada_url.check_url("https://xn--a.example/v1") and ada_url.check_url("https://xn--/")
    assert not gateway_parses_url("https://xn--a.example/v1") and not gateway_parses_url("https://xn--/")
    assert not gateway_parses_url("https://xn--mnchen.example/")
    assert gateway_parses_url("https://XN--MNCHEN-3YA.example/")


def test_mistral_provider_is_refused_in_2026_05_upstreams(tmp_path: Path) -> None:
    diags = validate(tmp_path, with_upstream(opencode_settings={"ai_sdk_provider": "mistral"}), "2026-05")
    assert codes(diags) == ["E113"] and diags[0].path == "variants[0].upstream.opencode_settings.ai_sdk_provider"
    ok = validate(tmp_path, with_upstream(opencode_settings={"ai_sdk_provider": "alibaba"}), "2026-05")
    assert ok == []


def test_mistral_provider_lives_in_2026_06_metadata(tmp_path: Path) -> None:
    md = {"context_length": 200000, "max_completion_tokens": 32000, "opencode_settings": {"ai_sdk_provider": "mistral"}}
    assert validate(tmp_path, doc(metadata=md), "2026-06") == []


@pytest.mark.parametrize("field", ["opencode_settings", "openclaw_settings"])
def test_settings_in_2026_06_upstreams_say_where_they_went(tmp_path: Path, field: str) -> None:
    value = {"ai_sdk_provider": "anthropic"} if field == "opencode_settings" else {"api_adapter": "openai-responses"}
    diags = validate(tmp_path, with_upstream(**{field: value}), "2026-06")
    assert codes(diags) == ["E140"]
    assert diags[0].path == f"variants[0].upstream.{field}" and diags[0].source and diags[0].source.line > 0
    if field == "opencode_settings":
        assert "metadata.opencode_settings" in diags[0].hint


@pytest.mark.parametrize(("field", "value"), [("extra_headers", {"x-trace": "1"}), ("remove_cache_breakpoints", True)])
def test_2026_06_upstream_fields(tmp_path: Path, field: str, value: object) -> None:
    assert validate(tmp_path, with_upstream(**{field: value}), "2026-06") == []
    diags = validate(tmp_path, with_upstream(**{field: value}), "2026-05")
    assert codes(diags) == ["E141"] and "2026-06" in diags[0].message


def test_extra_headers_are_strings(tmp_path: Path) -> None:
    assert codes(validate(tmp_path, with_upstream(extra_headers={"x-n": 1}), "2026-06")) == ["E112"]


def test_metadata_is_2026_06_only(tmp_path: Path) -> None:
    md = {"context_length": 1, "max_completion_tokens": 1}
    assert codes(validate(tmp_path, doc(metadata=md), "2026-05")) == ["E141"]


@pytest.mark.parametrize(("md", "expected"), [
    ({"context_length": 1.5, "max_completion_tokens": -3}, []),  # any number, as the gateway
    ({"context_length": 128000}, ["E111"]),
    ({"context_length": 1, "max_completion_tokens": 1, "supports_image_input": "yes"}, ["E112"]),
    ({"context_length": 1, "max_completion_tokens": 1, "colour": "red"}, ["E110"]),
    ({"context_length": 1, "max_completion_tokens": 1,
      "opencode_settings": {"variants": {"fast": {"reasoning": {"effort": "max"}}}}}, ["E113"]),
    ({"context_length": 1, "max_completion_tokens": 1,
      "opencode_settings": {"variants": {"fast": {"reasoning": {"effort": "xhigh", "budget": 1}}}}}, ["E110"]),
    ({"context_length": 1, "max_completion_tokens": 1,
      "opencode_settings": {"family": "gpt", "prompt": "gpt55",
                            "variants": {"fast": {"verbosity": "max", "reasoning": {"enabled": True}}}}}, []),
])
def test_metadata_follows_custom_llm_metadata(tmp_path: Path, md: dict, expected: list[str]) -> None:
    assert codes(validate(tmp_path, doc(metadata=md), "2026-06")) == expected


def test_metadata_null_is_refused(tmp_path: Path) -> None:
    assert codes(validate(tmp_path, doc(metadata=None), "2026-06")) == ["E112"]


@pytest.mark.parametrize("profile", BOTH)
@pytest.mark.parametrize("field", ["extra_body", "remove_from_body", "add_cache_breakpoints",
                                   "inject_reasoning_into_content"])
def test_nothing_in_the_upstream_is_nullable(tmp_path: Path, profile: str, field: str) -> None:
    diags = validate(tmp_path, with_upstream(**{field: None}), profile)
    assert codes(diags) == ["E112"] and diags[0].path == f"variants[0].upstream.{field}"


@pytest.mark.parametrize("field", ["opencode_settings", "openclaw_settings"])
def test_settings_objects_are_not_nullable_in_2026_05(tmp_path: Path, field: str) -> None:
    assert codes(validate(tmp_path, with_upstream(**{field: None}), "2026-05")) == ["E112"]


@pytest.mark.parametrize("profile", BOTH)
def test_null_inside_extra_body_is_fine(tmp_path: Path, profile: str) -> None:
    assert validate(tmp_path, with_upstream(extra_body={"stop": None, "remove": [None]}), profile) == []


@pytest.mark.parametrize("profile", BOTH)
@pytest.mark.parametrize("where", ["extra_body", "nested", "upstream", "list"])
def test_proto_key_is_refused_in_every_json_object(tmp_path: Path, profile: str, where: str) -> None:
    text = {
        "extra_body": "      extra_body: {__proto__: {x: 1}, temperature: 0.2}\n",
        "nested": "      extra_body: {reasoning: {__proto__: 1}}\n",
        "upstream": "      __proto__: {x: 1}\n",
        "list": "      extra_body: {items: [{__proto__: 1}]}\n",
    }[where]
    base = ("key: foo\npublic_model_id: partner/foo\nname: Foo\nvariants:\n  - label: a\n    weight: 1\n"
            "    upstream:\n      internal_id: m\n      base_url: https://api.partner.example/v1\n")
    diags = validate(tmp_path, base + text + "    api_key: env:K\n", profile)
    assert codes(diags) == ["E142"]
    assert diags[0].source is not None and diags[0].source.line == 10 and "__proto__" in diags[0].path


def test_proto_key_is_refused_in_extra_headers_and_metadata_records(tmp_path: Path) -> None:
    assert codes(validate(tmp_path, with_upstream(extra_headers={"__proto__": "x"}), "2026-06")) == ["E142"]
    md = {"context_length": 1, "max_completion_tokens": 1, "opencode_settings": {"variants": {"__proto__": {}}}}
    assert codes(validate(tmp_path, doc(metadata=md), "2026-06")) == ["E142"]


def test_constructor_and_prototype_keys_are_kept(tmp_path: Path) -> None:
    # the gateway keeps these (sheet §8): no reason to refuse them
    assert validate(tmp_path, with_upstream(extra_body={"constructor": 1, "prototype": 2}), "2026-06") == []


EMOJI = "\U0001f600"  # two UTF-16 code units


@pytest.mark.parametrize("profile", BOTH)
@pytest.mark.parametrize(("field", "value", "ok"), [
    ("name", "n" * 200, True),
    ("name", "n" * 201, False),
    ("name", EMOJI * 100, True),
    ("name", EMOJI * 101, False),  # 101 code points, 202 UTF-16 units
    ("description", "d" * 2000, True),
    ("description", EMOJI * 1000 + "d", False),  # 1001 code points, 2001 units
    ("label", EMOJI * 32, True),
    ("label", EMOJI * 33, False),  # 33 code points, 66 units
    ("label", "l" * 65, False),
    ("name", "", False),
    ("label", "", False),
])
def test_lengths_count_utf16_code_units(tmp_path: Path, profile: str, field: str, value: str, ok: bool) -> None:
    d = doc()
    if field == "label":
        d["variants"][0]["label"] = value
    else:
        d[field] = value
    diags = validate(tmp_path, d, profile)
    assert (diags == []) is ok, diags
    if not ok:
        assert codes(diags) == ["E143"] and str(utf16_len(value)) in diags[0].message


@pytest.mark.parametrize("profile", BOTH)
@pytest.mark.parametrize(("pin", "ok"), [
    ("5d0c2a7e-3b1f-4e8a-9c61-0f2b7d4e9a13", True),
    ("5D0C2A7E-3B1F-4E8A-9C61-0F2B7D4E9A13", True),  # any case
    ("00000000-0000-0000-0000-000000000000", True),  # nil
    ("ffffffff-ffff-ffff-ffff-ffffffffffff", True),  # max
    ("5d0c2a7e-3b1f-0e8a-9c61-0f2b7d4e9a13", False),  # version 0
    ("5d0c2a7e-3b1f-9e8a-9c61-0f2b7d4e9a13", False),  # version 9
    ("5d0c2a7e-3b1f-4e8a-cc61-0f2b7d4e9a13", False),  # variant c (Microsoft)
    ("5d0c2a7e3b1f4e8a9c610f2b7d4e9a13", False),  # no hyphens
    ("{5d0c2a7e-3b1f-4e8a-9c61-0f2b7d4e9a13}", False),
    ("urn:uuid:5d0c2a7e-3b1f-4e8a-9c61-0f2b7d4e9a13", False),
])
def test_pinned_ids_match_the_admin_api_uuid_pattern(tmp_path: Path, profile: str, pin: str, ok: bool) -> None:
    for where in ("experiment", "variant"):
        d = doc()
        (d if where == "experiment" else d["variants"][0])["id"] = pin
        diags = validate(tmp_path, d, profile)
        assert (diags == []) is ok, diags
        if not ok:
            assert codes(diags) == ["E144"]


@pytest.mark.parametrize(("pid", "ok_06"), [
    ("kilo/x", False),
    ("kilocode/x", False),
    ("kilo-internal/x", False),
    ("kilo-x", True),
    ("kilocode", True),
    ("partner/kilo/x", True),
])
def test_reserved_public_id_prefixes_in_2026_06(tmp_path: Path, pid: str, ok_06: bool) -> None:
    diags = validate(tmp_path, doc(public_model_id=pid), "2026-06")
    assert (diags == []) is ok_06 and (ok_06 or codes(diags) == ["E220"])
    assert validate(tmp_path, doc(public_model_id=pid), "2026-05") == []  # no reserved prefixes then


def test_internal_id_of_one_space_passes(tmp_path: Path) -> None:
    # zod min(1) counts code units: " " passes in the gateway, and in expsync
    assert validate(tmp_path, with_upstream(internal_id=" "), "2026-06") == []
