"""Parsing of ``api_key`` secret references (spec §3). Pure: no value is ever looked up here.

Accepted forms::

    env:NAME                      NAME matches [A-Za-z_][A-Za-z0-9_]*
    file:PATH                     absolute, or relative to the working directory
    aws-sm:SECRET_ID[#JSON_FIELD]
    vault:MOUNT/PATH#FIELD        KV v2; FIELD is required

Anything else - including a string that looks like a literal key - is refused. The error
message never repeats the rejected text, because a literal key pasted by mistake is a secret.
"""

from __future__ import annotations

import re
from typing import Final

from expsync.diagnostics import SourceRange
from expsync.model import SecretRef

SCHEMES: Final = ("env", "file", "aws-sm", "vault")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_AWS_ID = re.compile(r"[A-Za-z0-9/_+=.@:-]{1,2048}\Z")
_VAULT_PATH = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.@-]+)+\Z")
_FIELD = re.compile(r"[^#\s]{1,256}\Z")


class RefSyntaxError(ValueError):
    """Raised with a message that never contains the rejected text."""


def parse_ref(text: str, source: SourceRange | None = None) -> SecretRef:
    scheme, sep, rest = text.partition(":")
    if not sep or scheme not in SCHEMES:
        raise RefSyntaxError(
            "api_key must be a secret reference (env:, file:, aws-sm: or vault:), never a literal key"
        )
    if scheme == "env":
        if not _ENV_NAME.fullmatch(rest):
            raise RefSyntaxError("env: reference needs a variable name like env:FOO_API_KEY")
        return SecretRef("env", rest, None, source)
    if scheme == "file":
        if not rest or "\x00" in rest or "#" in rest:
            raise RefSyntaxError("file: reference needs a path like file:/run/secrets/foo")
        return SecretRef("file", rest, None, source)
    locator, hashmark, fld = rest.partition("#")
    if hashmark and not _FIELD.fullmatch(fld):
        raise RefSyntaxError(f"{scheme}: reference has an empty or invalid #FIELD")
    if scheme == "aws-sm":
        if not _AWS_ID.fullmatch(locator):
            raise RefSyntaxError("aws-sm: reference needs a secret id like aws-sm:partners/foo#api_key")
        return SecretRef("aws-sm", locator, fld or None, source)
    if not _VAULT_PATH.fullmatch(locator) or not hashmark:
        raise RefSyntaxError("vault: reference needs MOUNT/PATH#FIELD like vault:secret/partners/foo#api_key")
    return SecretRef("vault", locator, fld, source)
