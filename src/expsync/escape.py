"""Escaping of user-controlled text (file names, YAML values, database values) per output sink.

One definition of the characters that never reach an output raw, :data:`INVISIBLE`: C0 and C1
controls, DEL, bidi embeddings/overrides/isolates (U+202A-202E, U+2066-2069, U+061C),
zero-width and invisible format characters (U+200B-200F, U+2060-2064, U+FEFF, U+00AD), the
line/paragraph separators U+2028/2029, interlinear annotations (U+FFF9-FFFB) and Unicode tag
characters (U+E0000-E007F, used to hide text). The schema refuses the same set in ids and text
fields (:mod:`expsync.desired.schema`), so what is refused on input is what is escaped on output.

Escaping is *visible* (``\\n``, ``\\x1b``, ``\\u202e``, like a Python literal) so a reviewer sees
that something is there. The runner's legacy command prefix ``##[``, which it recognises anywhere
in a line, shows as ``#\\x23[`` in every sink. Sinks:

* :func:`terminal` - a line of a terminal or CI log (no ESC/OSC/CSI can reach it);
* :func:`markdown_text` / :func:`markdown_code` - plain text and code spans in a PR comment;
* :func:`workflow_data` / :func:`workflow_property` - GitHub workflow-command message and
  property values (``::error file=...::message``): visible escaping, then GitHub's own
  ``%``-encoding of ``%``, CR, LF (and ``:`` and ``,`` in properties);
* :class:`LogFormatter` - log records (library logs quote ids and paths from the YAML).

* :func:`json_document` - a JSON document printed where a log can show it: the same
  characters (and ``##[``) as JSON escapes, which parse back to the same text.
This module imports nothing beyond the standard library: every layer may use it.
"""

from __future__ import annotations

import logging
import re
from typing import Final

#: the part of :data:`INVISIBLE_CLASS` beyond the C0 controls
_BEYOND_C0: Final = (
    "\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069"
    "\ufeff\ufff9-\ufffb\U000e0000-\U000e007f"
)
#: the character class (inside ``[...]``) of characters that are never shown or stored raw
INVISIBLE_CLASS: Final = "\x00-\x1f" + _BEYOND_C0
INVISIBLE: Final = re.compile(f"[{INVISIBLE_CLASS}]")

_SHORT: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>|~&!])")
#: GitHub finds ``@user``, ``@org/team``, ``#1`` and ``org/repo#1`` in the rendered text, after
#: markdown: a backslash escape is consumed first and still notifies or cross-references. Only
#: text inside a code span is skipped, so these characters become one-character code spans.
_MD_LINKED: Final = re.compile(r"[#@]+")


def _visible(m: re.Match[str]) -> str:
    c = m.group()
    if c in _SHORT:
        return _SHORT[c]
    n = ord(c)
    if n <= 0xFF:
        return f"\\x{n:02x}"
    if n <= 0xFFFF:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


#: the GitHub runner's legacy workflow-command prefix, recognised anywhere in a log line
#: (``##[add-mask]x``, ``##[stop-commands]t``), unlike ``::command::`` at the start of one
LEGACY_COMMAND: Final = "##["


def visible(s: str) -> str:
    """Every :data:`INVISIBLE` character replaced by its visible escape, and the second ``#``
    of :data:`LEGACY_COMMAND` as ``\\x23``; the rest unchanged."""
    s = INVISIBLE.sub(_visible, s)
    return s.replace(LEGACY_COMMAND, "#\\x23[") if LEGACY_COMMAND in s else s


#: what :func:`json_document` escapes: :data:`INVISIBLE` but the layout's whitespace (tab, line
#: feed, carriage return: ``json.dumps`` escapes every control inside a string, so a raw one is
#: layout), and ``##[``
_JSON_UNSAFE: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f" + _BEYOND_C0 + "]|##\\[")


def _json_escape(m: re.Match[str]) -> str:
    c = m.group()
    if c == "##[":
        return "#\\u0023["
    n = ord(c)
    if n > 0xFFFF:  # a surrogate pair, as JSON spells a character beyond the BMP
        n -= 0x10000
        return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"
    return f"\\u{n:04x}"


def json_document(text: str) -> str:
    """A JSON text (``json.dumps`` output) whose invisible characters and ``##[`` are JSON
    escapes (``\\u202e``, ``#\\u0023[``): ``json.loads`` reads the same values back. Outside
    strings JSON holds only structure, numbers, literals and layout whitespace, so every match
    is inside a string."""
    return _JSON_UNSAFE.sub(_json_escape, text)


def terminal(s: str) -> str:
    """Text for a terminal or log line: no control sequence, no line break, no bidi trick."""
    return visible(s)


def markdown_text(s: str) -> str:
    """Plain text in markdown (also in a table cell): escaped visibly, markup characters
    backslash-escaped so a value cannot inject links, HTML or table cells, and ``@`` / ``#`` as
    code spans (`` `@` ``, one per run) so it cannot mention anyone or reference an issue."""
    return _MD_LINKED.sub(r"`\g<0>`", _MD_SPECIAL.sub(r"\\\1", visible(s)))


def markdown_code(s: str) -> str:
    """A code span that survives any content, also in a table cell (``|`` is escaped there
    even inside code, a GFM table rule)."""
    s = visible(s).replace("|", "\\|")
    if not s:
        return ""
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def workflow_data(s: str) -> str:
    """The message part of a GitHub workflow command (after ``::``)."""
    return visible(s).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(s: str) -> str:
    """A property value of a GitHub workflow command (``file=``, ``title=``)."""
    return workflow_data(s).replace(":", "%3A").replace(",", "%2C")


class LogFormatter(logging.Formatter):
    """A formatter whose formatted message is one escaped line (tracebacks stay as they are)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return terminal(super().formatMessage(record))
