"""Encryption of partner API keys, byte-compatible with the gateway (spec §2.3).

The gateway decrypts ``model_experiment_variant_version.encrypted_api_key`` itself, so the
format here is a compatibility contract, not a design choice: AES-256-GCM, the key is
``base64decode(BYOK_ENCRYPTION_KEY)`` used as is (exactly 32 bytes, no KDF), a random 12-byte
IV, a 16-byte tag, no AAD, UTF-8 plaintext, stored as ``{"iv", "data", "authTag"}`` in
standard padded base64 with the tag *separate* from the ciphertext (Node's ``getAuthTag()``
layout, whereas ``AESGCM`` returns ``ciphertext || tag``).

Nothing in this module ever puts key material, plaintext or ciphertext into an exception
message: those messages are printed verbatim by the CLI (spec §9).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from expsync.errors import ConfigError, ExpsyncError
from expsync.model import Secret, SecretRef
from expsync.settings import BYOK_ENV_VAR

__all__ = [
    "IV_BYTES",
    "KEY_BYTES",
    "KEY_ENV_VAR",
    "TAG_BYTES",
    "DecryptError",
    "api_keys_digest",
    "decrypt_api_key",
    "decrypter",
    "encrypt_api_key",
    "keys_equal",
    "load_key",
]

KEY_ENV_VAR: Final = BYOK_ENV_VAR
KEY_BYTES: Final = 32
IV_BYTES: Final = 12
TAG_BYTES: Final = 16

_HOW_TO_GENERATE: Final = "generate one with `openssl rand -base64 32`"


class DecryptError(ExpsyncError):
    """A stored ``encrypted_api_key`` cannot be decrypted or is malformed.

    Almost always the wrong ``BYOK_ENCRYPTION_KEY`` (a configuration problem, hence exit 3 like
    :class:`~expsync.errors.ConfigError`); otherwise a corrupted row. Callers that compare keys
    for a plan turn it into an ``E407`` diagnostic. The message names the problem only.
    """

    exit_code = 3


def load_key(value: str | None) -> bytes:
    """Decode ``BYOK_ENCRYPTION_KEY`` into the 32-byte AES key, or raise :class:`ConfigError`.

    Decoding follows what the gateway's Node ``Buffer.from(value, "base64")`` accepts for
    well-formed input (surrounding whitespace, missing padding, the URL-safe alphabet), so a key
    the gateway works with also works here and yields the same bytes. Characters Node would
    silently skip are refused instead: silently deriving a different key would encrypt rows the
    gateway cannot read. The value itself is never echoed.
    """
    if value is None or not value.strip():
        raise ConfigError(f"{KEY_ENV_VAR} is not set; it must be a base64-encoded 32-byte key: {_HOW_TO_GENERATE}")
    text = "".join(value.split()).translate(str.maketrans("-_", "+/"))
    text += "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # `from None`: the chained exception adds nothing useful and must not carry the value.
        raise ConfigError(f"{KEY_ENV_VAR} is not valid base64; {_HOW_TO_GENERATE}") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{KEY_ENV_VAR} must decode to exactly {KEY_BYTES} bytes (it decodes to {len(key)}); {_HOW_TO_GENERATE}"
        )
    return key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_key(key: bytes) -> None:
    # AESGCM would also accept 16/24-byte keys (AES-128/192): the gateway would not.
    if len(key) != KEY_BYTES:
        raise ValueError(f"the encryption key must be {KEY_BYTES} bytes; obtain it with load_key()")


@functools.lru_cache(maxsize=4)
def _cipher(key: bytes) -> AESGCM:
    """One cipher object per key for the process: building one (key schedule) cost more than
    decrypting a short api key when a plan compares thousands of stored keys."""
    return AESGCM(key)


def encrypt_api_key(plaintext: str | Secret, key: bytes, *, iv: bytes | None = None) -> dict[str, str]:
    """Encrypt an API key for ``encrypted_api_key``: ``{"iv", "data", "authTag"}`` in that order.

    ``iv`` is for test vectors only: in production it must be left out so every encryption gets
    a fresh random IV (reusing an IV under one GCM key breaks both secrecy and integrity).
    """
    _check_key(key)
    if iv is None:
        iv = os.urandom(IV_BYTES)
    elif len(iv) != IV_BYTES:
        raise ValueError(f"iv must be {IV_BYTES} bytes")
    text = plaintext.reveal() if isinstance(plaintext, Secret) else plaintext
    sealed = _cipher(key).encrypt(iv, text.encode("utf-8"), None)
    return {"iv": _b64(iv), "data": _b64(sealed[:-TAG_BYTES]), "authTag": _b64(sealed[-TAG_BYTES:])}


def _field(enc: Mapping[str, object], name: str) -> bytes:
    raw = enc.get(name)
    if not isinstance(raw, str):
        raise DecryptError(f"stored api key is malformed: {name!r} is missing or not a string")
    try:
        # what base64.b64decode(raw, validate=True) does, without its wrapper
        return binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError):
        raise DecryptError(f"stored api key is malformed: {name!r} is not valid base64") from None


def decrypter(key: bytes) -> Callable[[Mapping[str, object]], Secret]:
    """:func:`decrypt_api_key` bound to one key: the key is checked and its cipher looked up
    once, for a plan that decrypts thousands of stored keys."""
    _check_key(key)
    aead = _cipher(key).decrypt

    def decrypt(enc: Mapping[str, object]) -> Secret:
        if type(enc) is not dict and not isinstance(enc, Mapping):
            raise DecryptError("stored api key is malformed: expected a JSON object with iv, data and authTag")
        iv, data, tag = _field(enc, "iv"), _field(enc, "data"), _field(enc, "authTag")
        if len(iv) != IV_BYTES:
            raise DecryptError(f"stored api key is malformed: iv must be {IV_BYTES} bytes")
        if len(tag) != TAG_BYTES:
            raise DecryptError(f"stored api key is malformed: authTag must be {TAG_BYTES} bytes")
        try:
            plain = aead(iv, data + tag, None)
        except InvalidTag:
            raise DecryptError(
                f"stored api key cannot be decrypted: authentication failed (wrong {KEY_ENV_VAR}, or the row was altered)"
            ) from None
        try:
            return Secret(plain.decode("utf-8"))
        except UnicodeDecodeError:
            raise DecryptError("stored api key decrypts to bytes that are not UTF-8 text") from None

    return decrypt


def decrypt_api_key(enc: Mapping[str, object], key: bytes) -> Secret:
    """Decrypt a stored ``encrypted_api_key`` JSON object into a :class:`Secret`.

    Raises :class:`DecryptError` when the object is malformed or authentication fails (wrong
    ``BYOK_ENCRYPTION_KEY`` or tampered data); GCM cannot tell those two apart.
    """
    return decrypter(key)(enc)


def keys_equal(a: Secret, b: Secret) -> bool:
    """Compare two keys in constant time, so timing never reveals how much of a key matched."""
    return hmac.compare_digest(a.reveal().encode("utf-8"), b.reveal().encode("utf-8"))


#: HKDF ``info`` of the key that fingerprints api key values for a plan's digests (a key of
#: its own: the AES key itself is never used for anything but the gateway's format)
_FINGERPRINT_INFO: Final = b"expsync plan digests: api key fingerprint v1"


def _fingerprint_key(byok_key: bytes) -> bytes:
    _check_key(byok_key)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_FINGERPRINT_INFO).derive(byok_key)


def api_keys_digest(writes: Sequence[tuple[uuid.UUID, SecretRef]], secrets: Mapping[SecretRef, Secret],
                    byok_key: bytes) -> str:
    """A keyed digest binding the value of every api key a plan writes (``(variant id,
    reference)`` pairs, in plan order) - ``"hmac-sha256:<hex>"``, or ``""`` for none.

    Each value enters only as ``HMAC(K, value)`` with ``K = HKDF(BYOK key, info)``: the digest
    changes when a value changes, and reveals nothing about a value to anyone without the BYOK
    key (who could decrypt the stored keys anyway). A reference without a resolved value
    raises ``KeyError`` naming nothing but the reference.
    """
    if not writes:
        return ""
    key = _fingerprint_key(byok_key)
    outer = hmac.new(key, digestmod="sha256")
    for variant_id, ref in writes:
        secret = secrets.get(ref)
        inner = b"unresolved" if secret is None else hmac.new(key, secret.reveal().encode("utf-8"),
                                                               digestmod="sha256").digest()
        outer.update(f"{variant_id}\0{ref}\0".encode() + inner + b"\n")
    return "hmac-sha256:" + outer.hexdigest()
