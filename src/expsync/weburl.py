"""The gateway's URL parser: what its zod ``url()`` check accepts and where a request goes.

The gateway trims a ``base_url`` the way JavaScript's ``String.prototype.trim()`` does and
parses it with Node's WHATWG ``new URL()``, whose parser is Ada; PyPI ``ada-url`` binds the same
parser (gateway-profiles §2 "URL check"). One caveat of the pinned ada-url 4.0.0: it accepts
``xn--`` labels that are not valid IDNA (``xn--a``, ``xn--``) which Node 20's Ada refused, so
such labels are checked here too. :func:`parse` is the one place a URL is parsed the gateway's
way; validation (``desired/``) and the plan's security section (``plan/``) both use it.

A folder repeats a handful of base URLs thousands of times, so :func:`parse` is memoised
(bounded) and returns an immutable :class:`ParsedURL` snapshot that is safe to share.
"""

from __future__ import annotations

import functools
from typing import Final

import ada_url

from expsync.records import dataclass

#: what JavaScript's String.prototype.trim() removes (WhiteSpace + LineTerminator)
JS_SPACE: Final = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
#: distinct URLs remembered by :func:`parse` (a repository has a few; the bound caps memory),
#: and the longest one remembered (a longer one is parsed each time)
CACHE_SIZE: Final = 4096
CACHED_LENGTH: Final = 2048
_PARTS: Final = ("href", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search",
                 "hash", "origin")


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """The WHATWG components of a parsed URL (the attribute names of ``ada_url.URL``)."""

    href: str
    protocol: str
    username: str
    password: str
    host: str
    hostname: str
    port: str
    pathname: str
    search: str
    hash: str
    origin: str


def _valid_xn_label(label: str) -> bool:
    """An ``xn--`` label is valid only if it decodes to Unicode and encodes back to itself."""
    uni = ada_url.idna_to_unicode(label)
    if not uni or uni == label:
        return False
    back = ada_url.idna_to_ascii(uni)
    return (back.decode() if isinstance(back, bytes) else str(back)) == label


def parse(value: str) -> ParsedURL | None:
    """``value`` parsed as the gateway parses it (JS trim, then WHATWG), or ``None`` when the
    gateway would refuse it (and answer 503 for the whole experiment). Memoised: pure."""
    return parse_cached(value) if len(value) <= CACHED_LENGTH else _parse(value)


def _parse(value: str) -> ParsedURL | None:
    trimmed = value.strip(JS_SPACE)
    if not ada_url.check_url(trimmed):
        return None
    parts: dict[str, object] = dict(ada_url.parse_url(trimmed, _PARTS))
    url = ParsedURL(*(str(parts[p]) for p in _PARTS))
    if not all(_valid_xn_label(lbl) for lbl in url.hostname.split(".") if lbl.lower().startswith("xn--")):
        return None
    return url


#: :func:`_parse` memoised, for URLs up to :data:`CACHED_LENGTH` characters
parse_cached = functools.lru_cache(maxsize=CACHE_SIZE)(_parse)


def gateway_parses(value: str) -> bool:
    """Whether the gateway's zod ``url()`` check accepts ``value``."""
    return parse(value) is not None


def origin(value: str) -> str | None:
    """The origin a request goes to: ``scheme://host[:port]``, scheme and host lower-cased, IDNA
    and IPv4 forms normalised, the default port left out. ``None`` when the gateway could not
    parse ``value``."""
    url = parse(value)
    if url is None:
        return None
    found = url.origin
    return found if found and found != "null" else None
