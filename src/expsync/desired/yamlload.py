"""Strict YAML loading: libyaml's parser events, built into values that keep their positions.

Why not ``yaml.load``: it silently lets the last duplicate key win, expands aliases (an "alias
bomb" of a few hundred bytes becomes millions of nodes), honours merge keys and tags, and
forgets where each value came from. Here libyaml's C parser (``CSafeLoader``) produces events
and :func:`iter_documents` builds each document from them in one pass, without a node graph
(memory is the values plus one int position per value, never the whole file's nodes),
refusing:

* any alias (the first ``*name`` is refused where it stands, nothing is expanded)  E103
* merge keys ``<<``                                                              E104
* every explicit tag, core ones included (``!!str 1``, ``--- !!map``)            E105
* duplicate mapping keys, naming both lines                                      E102
* nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_NODES` values     E116
* mapping keys that are not strings (``~: 1``, ``1.5: 2``, ``true: x``)          E121
* exponent numbers YAML 1.1 reads as text (``2e-1``, ``1.5e3``)                E113 (E121 as keys)
* integers over :data:`MAX_INT_DIGITS` digits, numbers that overflow to
  infinity or underflow to zero (``1.0e+400``, ``1.5e-400``)                   E122

and recording, for every value, its ``file:line:col`` under a path such as
``variants[1].upstream.base_url`` (``path + "#key"`` holds the mark of a mapping key itself).
An anchor nothing refers to is harmless and is not refused.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, TypeAlias

import yaml

from expsync.desired.limits import DEFAULT_MAX_FILE_SIZE
from expsync.diagnostics import Diagnostic, SourceRange
from expsync.records import dataclass

#: libyaml is the supported configuration; the pure-Python loader is only a fallback.
_LOADER: Final[type] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_LIBYAML: Final = _LOADER is not yaml.SafeLoader

MAX_DEPTH: Final = 64
#: values (scalars, lists, mappings) in one document: a real experiment holds a few hundred
MAX_NODES: Final = 50_000
#: Python's own int-string limit (``sys.get_int_max_str_digits``), fixed here so a different
#: interpreter setting cannot change what is valid
MAX_INT_DIGITS: Final = 4300
#: diagnostics kept per file; the rest are only counted (:class:`Collector`)
MAX_DIAGNOSTICS_PER_FILE: Final = 100
#: how much of an offending value a message quotes
_QUOTE_CHARS: Final = 40

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_T + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _MAP, _SEQ, _MERGE = (_T + t for t in ("timestamp", "map", "seq", "merge"))
_ALLOWED_SCALAR_TAGS: Final = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP})

Value: TypeAlias = "None | bool | int | float | str | list[Value] | dict[str, Value]"


#: what the parser counts as a line break (YAML 1.1: CRLF, CR, LF, NEL, LS, PS)
_BREAK: Final = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_OTHER_BREAKS: Final = ("\r", "\x85", "\u2028", "\u2029")


class Lines:
    """A file's text, to turn the parser's character index of a mark into its line and column
    (reading a mark's index costs a third of reading its line and column, and an index is a
    smaller int). Text with only ``\n`` breaks is searched in place; any other break makes a
    table of line starts, built once."""

    __slots__ = ("bom", "libyaml", "simple", "starts", "text")

    def __init__(self, text: str, libyaml: bool = True) -> None:
        self.text = text
        self.libyaml = libyaml
        # a leading BOM: libyaml counts it in neither index nor column, the pure-Python parser
        # counts it in the index only
        self.bom = 1 if text.startswith("\ufeff") else 0
        self.simple: bool | None = None  # only \n breaks (decided on first use)
        self.starts: list[int] | None = None

    def position(self, index: int) -> tuple[int, int]:
        """0-based (line, column) of the mark at character ``index``."""
        text = self.text
        if self.simple is None:
            self.simple = not any(b in text for b in _OTHER_BREAKS)
        if self.simple:
            at = index + self.bom if self.libyaml else index  # -> a position in ``text``
            start = (text.rfind("\n", 0, at) + 1) or self.bom
            return text.count("\n", 0, at), max(at - start, 0)
        if self.starts is None:
            shift = self.bom if self.libyaml else 0
            self.starts = [self.bom - shift] + [m.end() - shift for m in _BREAK.finditer(text)]
            self.text = ""
        line = max(bisect.bisect_right(self.starts, index) - 1, 0)
        return line, max(index - self.starts[line], 0)


class Marks(Mapping[str, SourceRange]):
    """path -> :class:`SourceRange`, converted lazily from the parser's marks (most are never
    read): an int (the mark's character index) per path instead of a libyaml Mark object keeps
    5,000 documents' worth of positions small."""

    __slots__ = ("file", "lines", "raw")

    def __init__(self, file: str, lines: Lines) -> None:
        self.file = file
        self.lines = lines
        self.raw: dict[str, int] = {}

    def __getitem__(self, path: str) -> SourceRange:
        line, column = self.lines.position(self.raw[path])
        return SourceRange(self.file, line + 1, column + 1)

    def __contains__(self, path: object) -> bool:
        return path in self.raw

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


_DECIMAL_INT: Final = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
_DECIMAL_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
#: plain scalars libyaml's YAML 1.1 resolver reads as text and this loader refuses as ambiguous
#: numbers (``2e-1``, ``1.5e3``; E113, E121 as keys): a writer of YAML meant for this loader
#: quotes them (``expsync import``)
AMBIGUOUS_NUMBER: Final = _DECIMAL_FLOAT
_NONZERO_MANTISSA: Final = re.compile(r"[-+]?[0.]*[1-9][0-9.]*([eE][-+]?[0-9]+)?")
_BOOLS: Final = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document: its value, where each path sits, and where the document starts."""

    value: Value
    marks: Marks
    start: SourceRange


def _quote(text: str) -> str:
    """``repr`` of a value for a message, cut short (a refused value may be a megabyte)."""
    if len(text) <= _QUOTE_CHARS:
        return repr(text)
    return repr(text[:_QUOTE_CHARS]) + f"... ({len(text)} characters)"


class Collector:
    """A file's diagnostics: the first ``limit`` are kept, the rest counted, and
    :meth:`result` closes with one ``E124`` saying how many more there were."""

    __slots__ = ("file", "kept", "limit", "more")

    def __init__(self, file: str, limit: int = MAX_DIAGNOSTICS_PER_FILE) -> None:
        self.file = file
        self.limit = limit
        self.kept: list[Diagnostic] = []
        self.more = 0

    def add(self, diag: Diagnostic) -> None:
        if len(self.kept) < self.limit:
            self.kept.append(diag)
        else:
            self.more += 1

    def extend(self, diags: Iterable[Diagnostic]) -> None:
        """Add from an iterable; once full, only counts (a lazy iterable is not built further)."""
        it = iter(diags)
        for d in it:
            self.add(d)
            if self.full:
                self.more += sum(1 for _ in it)  # an error_count, not Diagnostic objects
                return

    @property
    def full(self) -> bool:
        return len(self.kept) >= self.limit

    def __bool__(self) -> bool:
        return bool(self.kept)

    def result(self) -> list[Diagnostic]:
        if not self.more:
            return list(self.kept)
        last = max((d.source for d in self.kept if d.source), default=SourceRange(self.file))
        # placed after the last one kept, so it closes the file's list once sorted
        more = Diagnostic.make("E124", f"... and {self.more} more problem(s) in this file (only the first "
                               f"{self.limit} are listed)", SourceRange(self.file, last.line, last.col))
        return [*self.kept, more]


class _Refused(Exception):
    def __init__(self, diag: Diagnostic) -> None:
        super().__init__(diag.message)
        self.diag = diag
        self.syntax: yaml.YAMLError | None = None


def _src(file: str, mark: yaml.Mark | None) -> SourceRange:
    if mark is None:
        return SourceRange(file, 1, 1)
    return SourceRange(file, mark.line + 1, mark.column + 1)


#: how libyaml's YAML 1.1 resolver reads a plain scalar (first character -> candidates); the
#: checks in :func:`_scalar` then refuse every form YAML 1.2 would read differently
_IMPLICIT: Final = {k: tuple(v) for k, v in yaml.resolver.Resolver.yaml_implicit_resolvers.items() if k is not None}


def _resolve_text(value: str) -> str:
    for tag, regexp in _IMPLICIT.get(value[:1], ()):
        if regexp.match(value):
            return str(tag)
    return _STR


#: plain scalars a document repeats (keys such as ``name``, numbers, ``true``): resolved once
_resolve_short = functools.lru_cache(maxsize=4096)(_resolve_text)
#: longer plain scalars are resolved each time (the cache must not hold megabytes of text)
_SHORT: Final = 64


def _resolve(value: str) -> str:
    """The tag of a plain scalar (a plain scalar starting with another character is a string)."""
    return _resolve_short(value) if len(value) <= _SHORT else _resolve_text(value)


def _refuse(code: str, message: str, file: str, mark: Any, path: str) -> _Refused:
    return _Refused(Diagnostic.make(code, message, _src(file, mark), path=path))


def _scalar(tag: str, text: str, file: str, mark: Any, path: str) -> Value:
    """A scalar's value for its (resolved) tag, refusing what would not mean what it says."""
    if tag == _STR or tag == _TIMESTAMP:
        if tag == _STR and _DECIMAL_FLOAT.fullmatch(text):
            # 2e-1, 1e3, 1.5e3: a number in YAML 1.2 (and JSON), text in YAML 1.1 (no dot or
            # no exponent sign), so the engineer and the gateway would read different values
            raise _refuse("E113", f"ambiguous number {_quote(text)} (YAML 1.1 reads it as text, YAML 1.2 as a "
                          "number): write it with a dot and a signed exponent (2.0e-1), or quote it",
                          file, mark, path)
        if "\x00" in text:  # an escaped "\0": Postgres text cannot store it
            raise _refuse("E113", "NUL characters are not allowed in values", file, mark, path)
        # a date-looking value (2024-01-01) stays the text the user wrote
        return text
    if tag not in _ALLOWED_SCALAR_TAGS:
        raise _refuse("E105", f"tag {_quote(tag)} is not allowed", file, mark, path)
    # YAML 1.1 (what libyaml resolves) reads 0123 as octal, 1:30 as base 60, 1_000 as 1000,
    # yes/no/on/off as booleans and .nan/.inf as floats; a value sent upstream must be what
    # the engineer meant, so only the unambiguous YAML 1.2 core forms are accepted
    if tag == _INT:
        if not _DECIMAL_INT.fullmatch(text):
            raise _refuse("E113", f"ambiguous number {_quote(text)} (YAML 1.1 would read it as octal, hex, "
                          "base 60 or with separators): write a plain decimal, or quote it", file, mark, path)
        digits = len(text.lstrip("+-"))
        if digits > MAX_INT_DIGITS:
            raise _refuse("E122", f"integer of {digits} digits (at most {MAX_INT_DIGITS})", file, mark, path)
        value = int(text)
        if digits > 308 and abs(value) > sys.float_info.max:
            # the gateway's JSON.parse reads it as Infinity (sent upstream as null); pydantic's
            # number check would raise OverflowError converting it
            raise _refuse("E122", f"integer of {digits} digits is too large for a JSON number (a double): the "
                          "gateway would read it as infinity", file, mark, path)
        return value
    if tag == _FLOAT:
        if not _DECIMAL_FLOAT.fullmatch(text):
            raise _refuse("E113", f"{_quote(text)} is not a finite decimal number: write one, or quote it",
                          file, mark, path)
        number = float(text)
        if not math.isfinite(number):
            raise _refuse("E122", f"{_quote(text)} is too large for a number (it would become infinity)",
                          file, mark, path)
        if number == 0.0 and _NONZERO_MANTISSA.fullmatch(text):
            raise _refuse("E122", f"{_quote(text)} is too small for a number (it would become 0)", file, mark, path)
        return number
    if tag == _BOOL:
        if text not in _BOOLS:
            raise _refuse("E113", f"{_quote(text)} is a boolean only in YAML 1.1: write true/false, or quote "
                          "it for text", file, mark, path)
        return _BOOLS[text]
    return None


_ScalarEvent, _AliasEvent = yaml.ScalarEvent, yaml.AliasEvent
_MappingStart, _MappingEnd = yaml.MappingStartEvent, yaml.MappingEndEvent
_SequenceStart, _SequenceEnd = yaml.SequenceStartEvent, yaml.SequenceEndEvent
_DocumentStart, _DocumentEnd, _StreamEnd = yaml.DocumentStartEvent, yaml.DocumentEndEvent, yaml.StreamEndEvent


# One loop over the parser's events, with its state in locals: split into a function per event
# kind, it would add a Python call per event to the hot loop every command runs. A mapping
# key and its value are read in the same turn of the loop, so the key needs no frame slot.
# longer than 60 lines: the hot per-event loop (see above)
def _document(get: Any, file: str, lines: Lines) -> Document:
    """Build one document from its events (after ``DocumentStart``, through ``DocumentEnd``).

    Streams: no node graph is ever held, only the values and their positions.
    ``container``/``cpath`` are the innermost open mapping or sequence and its path (``None``
    at the root); ``stack`` holds the enclosing ones, so its length is the nesting depth.
    Raises :class:`_Refused` (also for an empty document) after consuming the document's
    remaining events."""
    marks = Marks(file, lines)
    raw = marks.raw
    stack: list[tuple[Any, str]] = []
    container: Any = None
    cpath = ""
    key = ""
    root: Value = None
    root_mark: Any = None
    nodes = 0
    try:
        while True:
            ev = get()
            t = type(ev)
            if container is None:
                if t is _DocumentEnd:
                    break
                path = ""
            elif type(container) is dict:
                if t is _MappingEnd:
                    container, cpath = stack.pop()
                    continue
                mark = ev.start_mark
                if t is not _ScalarEvent:
                    if t is _AliasEvent:
                        raise _refuse("E103", "YAML alias refused (anchors and aliases are not allowed)",
                                      file, mark, cpath)
                    raise _refuse("E112", "mapping keys must be plain strings", file, mark, cpath)
                key = ev.value
                path = f"{cpath}.{key}" if cpath else key
                if ev.tag is not None:
                    raise _refuse("E105", "tags are not allowed, not even on keys", file, mark, path)
                if ev.implicit[0] and key[:1] in _IMPLICIT and ((tag := _resolve(key)) != _STR
                                                                or _DECIMAL_FLOAT.fullmatch(key)):
                    if tag == _MERGE:
                        raise _refuse("E104", "merge key '<<' refused", file, mark, cpath)
                    # ``~: 1`` and ``1.50: 2`` would silently become "None" and "1.5"
                    raise _refuse("E121", f"mapping key {_quote(key)} is not a string: quote it", file, mark, cpath)
                if "\x00" in key:
                    raise _refuse("E113", "NUL characters are not allowed in values", file, mark, path)
                if key in container:
                    first = marks[path + "#key"].line
                    raise _refuse("E102", f"duplicate key {_quote(key)} (first defined on line {first})",
                                  file, mark, path)
                raw[path + "#key"] = mark.index
                ev = get()  # the key's value, handled below in this same turn
                t = type(ev)
            else:
                if t is _SequenceEnd:
                    container, cpath = stack.pop()
                    continue
                path = f"{cpath}[{len(container)}]"
            # a node (value position)
            mark = ev.start_mark
            if t is _AliasEvent:
                raise _refuse("E103", "YAML alias refused (anchors and aliases are not allowed)", file, mark, path)
            if ev.tag is not None:
                raise _refuse("E105", f"tag {_quote(ev.tag)} is not allowed (no tags, not even core ones like !!str)",
                              file, mark, path)
            if len(stack) > MAX_DEPTH:
                raise _refuse("E116", f"nesting deeper than {MAX_DEPTH} levels", file, mark, path)
            nodes += 1
            if nodes > MAX_NODES:
                raise _refuse("E116", f"document holds more than {MAX_NODES} values", file, mark, path)
            raw[path] = mark.index
            value: Value
            if t is _ScalarEvent:
                text = ev.value
                if ev.implicit[0] and text[:1] in _IMPLICIT:
                    tag = _resolve(text)
                    if container is None and tag == _NULL:
                        raise _Refused(Diagnostic.make("E108", "empty YAML document", _src(file, mark)))
                    value = _scalar(tag, text, file, mark, path)
                else:  # a string: the common case, without a call
                    value = text if "\x00" not in text else _scalar(_STR, text, file, mark, path)
            elif t is _MappingStart or t is _SequenceStart:
                value = {} if t is _MappingStart else []
                if container is None:
                    root, root_mark = value, mark
                elif type(container) is dict:
                    container[key] = value
                else:
                    container.append(value)
                stack.append((container, cpath))
                container, cpath = value, path
                continue
            else:  # pragma: no cover - libyaml emits no other event here
                raise _refuse("E101", f"unexpected YAML event {t.__name__}", file, mark, path)
            if container is None:
                root, root_mark = value, mark
            elif type(container) is dict:
                container[key] = value
            else:
                container.append(value)
    except _Refused as refused:
        try:  # skip the rest of this document
            while (t := type(get())) is not _DocumentEnd and t is not _StreamEnd and t is not type(None):
                pass
        except yaml.YAMLError as e:
            refused.syntax = e  # reported too, after the refusal
        raise
    return Document(root, marks, _src(file, root_mark))


def iter_documents(text: str, file: str, diags: Collector) -> Iterator[Document]:
    """Every document of ``text``, built strictly from libyaml's events, as it is read.

    A syntax error stops the file (libyaml cannot resume); a refusal inside one document skips
    that document but later documents are still read, so one run reports as much as it can.
    """
    loader = _LOADER(text)
    lines = Lines(text, _LIBYAML)
    get = loader.get_event
    try:
        while True:
            ev = get()
            t = type(ev)
            if t is _DocumentStart:
                try:
                    doc = _document(get, file, lines)
                except _Refused as r:
                    diags.add(r.diag)
                    if r.syntax is not None:
                        raise r.syntax from None
                    continue
                yield doc
            elif t is _StreamEnd or ev is None:
                return
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = e.problem or "syntax error"
        if e.context:
            what = f"{e.context}: {what}"
        diags.add(Diagnostic.make("E101", what, _src(file, mark)))
    except yaml.YAMLError as e:
        diags.add(Diagnostic.make("E101", str(e).splitlines()[0] if str(e) else "syntax error", SourceRange(file, 1, 1)))
    finally:
        loader.dispose()


def load_documents(text: str, file: str, diags: Collector | None = None) -> tuple[list[Document], Collector]:
    """All documents of ``text`` at once (see :func:`iter_documents`)."""
    diags = Collector(file) if diags is None else diags
    return list(iter_documents(text, file, diags)), diags


def decode(data: bytes, file: str, max_size: int = DEFAULT_MAX_FILE_SIZE) -> tuple[str | None, Diagnostic | None]:
    """Bytes -> text, refusing oversized, binary and non-UTF-8 files (with the position)."""
    if len(data) > max_size:
        return None, Diagnostic.make("E106", f"file is {len(data)} bytes, over the {max_size}-byte limit", SourceRange(file, 1, 1))
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        col = nul - (data.rfind(b"\n", 0, nul) + 1) + 1
        return None, Diagnostic.make("E107", "binary file (NUL byte)", SourceRange(file, line, col))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        return None, Diagnostic.make("E107", f"invalid UTF-8 byte 0x{data[e.start]:02x}", SourceRange(file, line, col))
    return text, None
