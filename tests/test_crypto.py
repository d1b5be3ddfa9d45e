"""AES-256-GCM api key encryption, byte-compatible with the gateway (spec §2.3)."""

from __future__ import annotations

import base64
import json

import pytest

from expsync.crypto import DecryptError, decrypt_api_key, encrypt_api_key, keys_equal, load_key
from expsync.errors import ConfigError
from expsync.model import Secret

VECTOR_KEY_B64 = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
VECTOR_KEY = b"\x07" * 32
VECTOR_IV = b"\x01" * 12
VECTOR = {"iv": "AQEBAQEBAQEBAQEB", "data": "BYqkw/XMmCPg5u8=", "authTag": "c7u4OyVc28JaLeeSWVzpWA=="}


def test_spec_test_vector_encrypts_byte_for_byte() -> None:
    enc = encrypt_api_key("sk-test-123", load_key(VECTOR_KEY_B64), iv=VECTOR_IV)
    assert enc == VECTOR
    assert list(enc) == ["iv", "data", "authTag"]
    assert json.dumps(enc, separators=(",", ":")) == (
        '{"iv":"AQEBAQEBAQEBAQEB","data":"BYqkw/XMmCPg5u8=","authTag":"c7u4OyVc28JaLeeSWVzpWA=="}'
    )


def test_spec_test_vector_decrypts() -> None:
    secret = decrypt_api_key(VECTOR, VECTOR_KEY)
    assert isinstance(secret, Secret)
    assert secret.reveal() == "sk-test-123"


def test_round_trip_uses_a_fresh_random_iv_each_time() -> None:
    a = encrypt_api_key("sk-ünïcode-✓", VECTOR_KEY)
    b = encrypt_api_key("sk-ünïcode-✓", VECTOR_KEY)
    assert a["iv"] != b["iv"] and a["data"] != b["data"]
    assert len(base64.b64decode(a["iv"])) == 12
    assert len(base64.b64decode(a["authTag"])) == 16
    assert decrypt_api_key(a, VECTOR_KEY).reveal() == "sk-ünïcode-✓"
    assert decrypt_api_key(b, VECTOR_KEY).reveal() == "sk-ünïcode-✓"


def test_encrypt_accepts_a_secret() -> None:
    enc = encrypt_api_key(Secret("sk-test-123"), VECTOR_KEY, iv=VECTOR_IV)
    assert enc == VECTOR


def test_encrypt_refuses_wrong_iv_or_key_length() -> None:
    with pytest.raises(ValueError):
        encrypt_api_key("x", VECTOR_KEY, iv=b"\x01" * 16)
    with pytest.raises(ValueError):
        encrypt_api_key("x", b"\x07" * 16)  # AES-128 would work in AESGCM, not in the gateway


def test_wrong_key_raises_decrypt_error_without_material() -> None:
    enc = encrypt_api_key("sk-live-very-secret", VECTOR_KEY)
    with pytest.raises(DecryptError) as info:
        decrypt_api_key(enc, b"\x08" * 32)
    text = str(info.value)
    assert "BYOK_ENCRYPTION_KEY" in text
    for material in ("sk-live-very-secret", enc["data"], enc["iv"], enc["authTag"], VECTOR_KEY_B64):
        assert material not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_tampered_ciphertext_is_refused() -> None:
    enc = dict(VECTOR)
    data = bytearray(base64.b64decode(enc["data"]))
    data[0] ^= 1
    enc["data"] = base64.b64encode(bytes(data)).decode()
    with pytest.raises(DecryptError, match="authentication failed"):
        decrypt_api_key(enc, VECTOR_KEY)


@pytest.mark.parametrize(
    ("enc", "fragment"),
    [
        ({"data": VECTOR["data"], "authTag": VECTOR["authTag"]}, "'iv' is missing"),
        ({**VECTOR, "data": 5}, "'data' is missing or not a string"),
        ({**VECTOR, "authTag": "not base64!"}, "'authTag' is not valid base64"),
        ({**VECTOR, "iv": base64.b64encode(b"\x01" * 16).decode()}, "iv must be 12 bytes"),
        ({**VECTOR, "authTag": base64.b64encode(b"\x01" * 12).decode()}, "authTag must be 16 bytes"),
    ],
)
def test_malformed_stored_key_is_a_clear_decrypt_error(enc: dict[str, object], fragment: str) -> None:
    with pytest.raises(DecryptError) as info:
        decrypt_api_key(enc, VECTOR_KEY)
    assert fragment in str(info.value)


def test_decrypt_error_exits_like_invalid_configuration() -> None:
    assert DecryptError.exit_code == 3


@pytest.mark.parametrize(
    "value",
    [
        VECTOR_KEY_B64,
        f"  {VECTOR_KEY_B64}\n",  # whitespace around, as pasted into a CI secret
        VECTOR_KEY_B64.rstrip("="),  # Node accepts missing padding
        base64.urlsafe_b64encode(b"\xfb" * 32).decode(),  # Node accepts the URL-safe alphabet
    ],
)
def test_load_key_accepts_what_the_gateway_accepts(value: str) -> None:
    key = load_key(value)
    assert len(key) == 32
    normalised = "".join(value.split()).replace("-", "+").replace("_", "/")
    assert key == base64.b64decode(normalised + "=" * (-len(normalised) % 4))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (None, "is not set"),
        ("", "is not set"),
        ("   ", "is not set"),
        (base64.b64encode(b"k" * 16).decode(), "exactly 32 bytes (it decodes to 16)"),
        (base64.b64encode(b"k" * 33).decode(), "exactly 32 bytes (it decodes to 33)"),
        ("this is *not* base64 at all, sorry", "not valid base64"),
        ("sk-proj-" + "A" * 40 + "é", "not valid base64"),
    ],
)
def test_bad_byok_key_names_the_variable_and_how_to_generate_one(value: str | None, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_key(value)
    text = str(info.value)
    assert fragment in text
    assert "BYOK_ENCRYPTION_KEY" in text
    assert "openssl rand -base64 32" in text
    if value and value.strip():
        assert value.strip() not in text
    assert info.value.exit_code == 3


def test_keys_equal_compares_values() -> None:
    assert keys_equal(Secret("sk-a"), Secret("sk-a"))
    assert not keys_equal(Secret("sk-a"), Secret("sk-b"))
    assert not keys_equal(Secret("sk-a"), Secret("sk-a "))
    assert keys_equal(Secret("ключ"), Secret("ключ"))  # non-ASCII (compare_digest needs bytes)


def test_one_cipher_per_key_however_many_keys_are_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    from expsync import crypto

    built: list[bytes] = []

    real = crypto.AESGCM

    def counting(key: bytes) -> object:
        built.append(key)
        return real(key)

    monkeypatch.setattr(crypto, "AESGCM", counting)
    crypto._cipher.cache_clear()
    other = b"\x08" * 32
    stored = [encrypt_api_key(f"sk-{i}", VECTOR_KEY) for i in range(50)]
    assert [decrypt_api_key(e, VECTOR_KEY).reveal() for e in stored] == [f"sk-{i}" for i in range(50)]
    with pytest.raises(DecryptError):  # a different key gets its own cipher: never the cached one
        decrypt_api_key(stored[0], other)
    assert built == [VECTOR_KEY, other]
    crypto._cipher.cache_clear()


@pytest.mark.parametrize("enc", [
    VECTOR, {**VECTOR, "authTag": "not base64!"}, {**VECTOR, "iv": "AQEBAQEBAQEBAQE\u00e9"}, {**VECTOR, "data": "QQ"},
    {**VECTOR, "data": 5}, [1, 2], {**VECTOR, "data": base64.b64encode(b"\xff" * 8).decode()},
])
def test_a_bound_decrypter_checks_the_key_once_and_decrypts_alike(enc: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """compare_keys decrypts thousands of keys with one :func:`decrypter`: the key is checked
    once, and each value decrypts (or fails, with the same message) as decrypt_api_key does."""
    from expsync import crypto

    def outcome(f: object) -> str:
        try:
            return "ok:" + f(enc).reveal()  # type: ignore[operator]
        except DecryptError as e:
            return "error:" + str(e)

    expected = outcome(lambda e: decrypt_api_key(e, VECTOR_KEY))
    checks: list[bytes] = []
    real = crypto._check_key
    monkeypatch.setattr(crypto, "_check_key", lambda key: (checks.append(key), real(key))[1])
    decrypt = crypto.decrypter(VECTOR_KEY)
    assert [outcome(decrypt) for _ in range(20)] == [expected] * 20
    assert checks == [VECTOR_KEY]
