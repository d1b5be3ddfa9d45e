"""What a credential looks like by its *name*: the one definition expsync uses everywhere.

:func:`is_credential_name` decides whether a field, header or query-parameter name names a
credential (``api_key``, ``X-Api-Key``, ``Authorization``, ``access_token``, ``password``,
``client_secret``, ``sig`` ...). It is used to

- refuse a ``base_url`` that carries a key or token in its query string,
- refuse credential-looking literals anywhere in a variant's upstream JSON
  (``extra_body: {api_key: sk-...}``), and
- mask credential query parameters of every URL expsync shows (:mod:`expsync.urls`).

Names are split into words (on any non-alphanumeric character and on camelCase boundaries), so
``max_tokens``, ``cache_key`` or ``author`` are not credentials while ``apiKey``,
``x-api-key``, ``subscription-key`` and ``refresh_token`` are. Pure: no I/O, no imports
beyond the standard library. Being pure, the verdict is memoised per name (bounded): a folder
repeats the same few field, header and parameter names thousands of times.
"""

from __future__ import annotations

import functools
import re
from typing import Final

#: A name that is one of these (words joined, lower case) is a credential.
CREDENTIAL_NAMES: Final = frozenset(
    {
        "key", "apikey", "xapikey", "auth", "authorization", "proxyauthorization", "cookie", "sig",
        "signature", "pwd", "pass", "passwd", "password", "secret", "token", "bearer", "credential",
        "credentials", "sslpassword", "sessionid", "privatekey", "accesskey", "secretkey",
    }
)
#: A name containing one of these words is a credential (``refresh_token``, ``client_secret``).
CREDENTIAL_WORDS: Final = frozenset(
    {
        "token", "secret", "password", "passwd", "passphrase", "pwd", "credential", "credentials",
        "authorization", "auth", "oauth", "apikey", "signature", "bearer", "cookie", "jwt",
    }
)
#: ``key`` together with one of these words is a credential (``api_key``, ``subscription-key``).
KEY_QUALIFIERS: Final = frozenset(
    {"api", "access", "secret", "private", "auth", "subscription", "client", "signing", "master", "account",
     "session", "service", "app", "license", "encryption", "consumer", "x"}
)
#: Substrings of the joined name that always mean a credential (``myApiKey``, ``partnerapikey``).
CREDENTIAL_FRAGMENTS: Final = (
    "apikey", "accesskey", "secretkey", "privatekey", "accesstoken", "authtoken", "apitoken", "sessiontoken",
    "password", "passwd", "passphrase", "secret", "credential", "authorization",
)

#: distinct names remembered by :func:`is_credential_name`, and the longest one remembered
#: (a longer name is judged each time: the cache holds no megabyte keys)
CACHE_SIZE: Final = 8192
CACHED_LENGTH: Final = 128

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def name_words(name: str) -> list[str]:
    """``"X-Api-Key"`` -> ``["x", "api", "key"]``; ``"refreshToken"`` -> ``["refresh", "token"]``."""
    return [w.lower() for w in _WORD.findall(name)]


def is_credential_name(name: str) -> bool:
    """Whether ``name`` (a JSON key, a header or a query parameter) names a credential."""
    return judge_cached(name) if len(name) <= CACHED_LENGTH else _judge(name)


def _judge(name: str) -> bool:
    words = name_words(name)
    if not words:
        return False
    joined = "".join(words)
    if joined in CREDENTIAL_NAMES or any(f in joined for f in CREDENTIAL_FRAGMENTS):
        return True
    if any(w in CREDENTIAL_WORDS for w in words):
        return True
    return "key" in words and any(w in KEY_QUALIFIERS for w in words)


#: :func:`_judge` memoised (pure), for names up to :data:`CACHED_LENGTH` characters
judge_cached = functools.lru_cache(maxsize=CACHE_SIZE)(_judge)


__all__ = ["is_credential_name", "name_words"]
