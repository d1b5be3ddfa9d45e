"""Last-line defence against printing a resolved secret: mask every known value in text.

Secrets are already a type that refuses to print (:class:`expsync.model.Secret`) and no
message is built from a value, so the :class:`Redactor` is for what we do not control: a
library's log line, an exception from a third-party client, a CI step echoing output. Every
value the resolvers handle is registered as soon as it is fetched, and then:

- :meth:`Redactor.redact` replaces each registered value in a string with ``***``;
- :func:`redact_every_record` installs a log-record factory so every record is created
  already masked, whichever handler receives it (records from ``botocore.*`` or ``urllib3.*``
  included); :meth:`Redactor.logging_filter` does the same as a handler filter.
- :meth:`Redactor.github_mask_lines` yields ``::add-mask::VALUE`` workflow commands. When
  ``GITHUB_ACTIONS=true`` the CLI prints them to stdout *first*, before any other output of the
  run, so the runner masks the values in the whole job log (its masking also covers steps
  that run later). A multi-line value gets one ``add-mask`` per line, as GitHub recommends,
  because the runner masks line by line.

Values shorter than :data:`MIN_LENGTH` characters are ignored: masking ``"abc"`` everywhere
would mangle output and no real API key is that short.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Final

from expsync.model import Secret
from expsync.urls import url_secrets

MIN_LENGTH: Final = 4
MASK: Final = "***"
#: credentials expsync itself or a store client reads from the environment
CONFIG_SECRETS: Final = (
    "BYOK_ENCRYPTION_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "VAULT_TOKEN",
    "VAULT_SECRET_ID",
)
#: variables holding URLs that may carry a password
URL_VARS: Final = ("EXPSYNC_DATABASE_URL", "EXPSYNC_REDIS_URL")


class Redactor:
    """A set of secret values to mask. Thread-safe; its repr never shows a value."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, None] = {}  # registered values, in registration order
        self._forms: set[str] = set()  # values plus the forms they take inside other text
        self._pattern: re.Pattern[str] | None = None

    def __repr__(self) -> str:
        return f"<Redactor of {len(self._values)} values>"

    def __len__(self) -> int:
        return len(self._values)

    def __bool__(self) -> bool:
        # a redactor is a sink, not a collection: an empty one must not test false, or
        # `redactor.add if redactor else ...` drops the first values registered
        return True

    def add_config(self, environ: Mapping[str, str]) -> None:
        """Register the credentials in expsync's own configuration and the secret stores'
        credentials (:data:`CONFIG_SECRETS`, and the passwords and credential parameters of the
        database and Redis URLs), before anything can log them."""
        for name in CONFIG_SECRETS:
            if environ.get(name):
                self.add(environ[name])
        for name in URL_VARS:
            if environ.get(name):
                for value in url_secrets(environ[name]):
                    self.add(value)

    def add(self, value: str | Secret) -> None:
        """Register a value. Besides the value itself, its lines and its JSON- and
        repr-escaped forms are masked too: that is how a value appears inside a logged JSON
        body or a ``%r``-formatted message."""
        text = value.reveal() if isinstance(value, Secret) else value
        if len(text) < MIN_LENGTH:
            return
        import json  # only once there is a value: a command without secrets never needs it

        forms = {text, json.dumps(text)[1:-1], repr(text)[1:-1]}
        forms.update(line for line in text.splitlines())
        with self._lock:
            if text in self._values:
                return
            self._values[text] = None
            self._forms.update(f for f in forms if len(f) >= MIN_LENGTH)
            self._pattern = None

    def redact(self, text: str) -> str:
        """``text`` with every registered value replaced by ``***``."""
        pattern = self._compiled()
        return text if pattern is None else pattern.sub(MASK, text)

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._forms:
                # Longest first, so a value that contains another is masked whole.
                alternatives = sorted(self._forms, key=lambda f: (-len(f), f))
                self._pattern = re.compile("|".join(re.escape(f) for f in alternatives))
            return self._pattern

    def logging_filter(self) -> logging.Filter:
        """A filter that rewrites each record's message (and traceback text) redacted."""
        return RedactingFilter(self)

    def github_mask_lines(self) -> Iterator[str]:
        """``::add-mask::`` commands for every registered value, one per non-trivial line.

        ``%`` is escaped as ``%25`` because the runner unescapes command data (``%0A`` would
        otherwise become a newline and the wrong string would be masked).
        """
        with self._lock:
            values = list(self._values)
        seen: set[str] = set()
        for value in values:
            for line in value.splitlines():
                if len(line.strip()) < MIN_LENGTH or line in seen:
                    continue
                seen.add(line)
                yield "::add-mask::" + line.replace("%", "%25")


class RedactingFilter(logging.Filter):
    """Redacts records in place, so every handler after it sees the masked text."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(self._redactor, record)
        return True


def redact_record(redactor: Redactor, record: logging.LogRecord) -> None:
    """Replace ``record``'s message (and traceback, stack) by its redacted text, in place."""
    if not len(redactor):
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: logging reports it itself; do not add noise
        return
    record.msg, record.args = redactor.redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redactor.redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redactor.redact(record.stack_info)


_state: dict[str, object] = {}  # "base": the record factory found first; "active": the Redactor


def redact_every_record(redactor: Redactor) -> None:
    """From now on every log record is created already redacted by ``redactor``, so *every*
    handler - expsync's, a host application's, a test's capture - sees masked text, including
    records of botocore, urllib3 and hvac and of other threads. Installs one record factory the
    first time; later calls only switch the redactor (one per CLI run)."""
    _state["active"] = redactor
    if "base" in _state:
        return
    base = logging.getLogRecordFactory()
    _state["base"] = base

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = base(*args, **kwargs)
        active = _state.get("active")
        if isinstance(active, Redactor):
            redact_record(active, record)
        return record

    logging.setLogRecordFactory(factory)
