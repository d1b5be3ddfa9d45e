"""Strict YAML loading: libyaml's composer, then our own constructor that keeps node marks.

Why not ``yaml.load``: it silently lets the last duplicate key win, expands aliases (an "alias
bomb" of a few hundred bytes becomes millions of nodes), honours merge keys and tags, and
forgets where each value came from. Here ``yaml.compose_all`` (C, via ``CSafeLoader``) builds
the node graph - aliases stay *shared* nodes there, so nothing is expanded - and
:func:`construct` walks it once, refusing:

* a node reached twice (an alias; detected by identity before any expansion)   E103
* merge keys ``<<``                                                              E104
* every explicit tag, core ones included (``!!str 1``, ``--- !!map``)            E105
* duplicate mapping keys, naming both lines                                      E102
* nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_NODES` values     E116
* mapping keys that are not strings (``~: 1``, ``1.5: 2``, ``true: x``)          E121
* integers over :data:`MAX_INT_DIGITS` digits, numbers that overflow to
  infinity or underflow to zero (``1.0e+400``, ``1e-400``)                     E122

and recording, for every value, its ``file:line:col`` under a path such as
``variants[1].upstream.base_url`` (``path + "#key"`` holds the mark of a mapping key itself).
Unused anchors cannot be seen after composition and are harmless, so they are not refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import yaml

from expsync.diagnostics import Diagnostic, SourceRange

#: libyaml is the supported configuration; the pure-Python loader is only a fallback.
_LOADER: Final[type] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DEFAULT_MAX_FILE_SIZE: Final = 1024 * 1024
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


class Marks(Mapping[str, SourceRange]):
    """path -> :class:`SourceRange`, converted lazily from libyaml marks (most are never read)."""

    __slots__ = ("file", "raw")

    def __init__(self, file: str) -> None:
        self.file = file
        # packed (line << 20 | column), 0-based: an int per path instead of a libyaml Mark
        # object keeps 5,000 documents' worth of positions small
        self.raw: dict[str, int] = {}

    def __getitem__(self, path: str) -> SourceRange:
        packed = self.raw[path]
        return SourceRange(self.file, (packed >> 20) + 1, (packed & 0xFFFFF) + 1)

    def __contains__(self, path: object) -> bool:
        return path in self.raw

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

_DECIMAL_INT: Final = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
_DECIMAL_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_NONZERO_MANTISSA: Final = re.compile(r"[-+]?[0.]*[1-9]")
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
        for d in diags:
            self.add(d)

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


def _src(file: str, mark: yaml.Mark | None) -> SourceRange:
    if mark is None:
        return SourceRange(file, 1, 1)
    return SourceRange(file, mark.line + 1, mark.column + 1)


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _first_alias_mark(text: str, from_line: int) -> Any:
    """Position of the first alias at or after ``from_line`` (0-based). Only called on the
    refusal path: events are not expanded, so this is linear even for an alias bomb."""
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            mark = event.start_mark
            if isinstance(event, yaml.AliasEvent) and mark is not None and mark.line >= from_line:
                return mark
    except yaml.YAMLError:
        return None
    return None


def _explicit_tags(text: str) -> frozenset[int]:
    """Packed positions of the nodes written with an explicit tag. A composed node no longer
    says whether its tag was written (``!!str 1`` and ``"1"`` compose alike), the events do,
    and a node starts where its event does. A tag starts with ``!``, so a file without one is
    not parsed twice."""
    if "!" not in text:
        return frozenset()
    found = set()
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.NodeEvent) and getattr(event, "tag", None) is not None:
                found.add(event.start_mark.line << 20 | event.start_mark.column)
    except yaml.YAMLError:
        pass  # composing reports the syntax error with its position
    return frozenset(found)


class _Builder:
    def __init__(self, file: str, text: str, doc_line: int, tagged: frozenset[int]) -> None:
        self.file = file
        self.tagged = tagged
        self.text = text
        self.doc_line = doc_line
        self.marks = Marks(file)
        self.raw = self.marks.raw
        self.seen: set[int] = set()
        self.nodes = 0

    def refuse(self, code: str, message: str, node: yaml.Node, path: str) -> _Refused:
        return _Refused(Diagnostic.make(code, message, _src(self.file, node.start_mark), path=path))

    def build(self, node: yaml.Node, path: str, depth: int) -> Value:
        if id(node) in self.seen:
            mark = _first_alias_mark(self.text, self.doc_line) or node.start_mark
            raise _Refused(
                Diagnostic.make(
                    "E103", "YAML alias refused (anchors and aliases are not allowed)", _src(self.file, mark), path=path
                )
            )
        self.seen.add(id(node))
        if depth > MAX_DEPTH:
            raise self.refuse("E116", f"nesting deeper than {MAX_DEPTH} levels", node, path)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.refuse("E116", f"document holds more than {MAX_NODES} values", node, path)
        m = node.start_mark
        packed = self.raw[path] = m.line << 20 | m.column
        if self.tagged and packed in self.tagged:
            raise self.refuse("E105", f"tag {_quote(node.tag)} is not allowed (no tags, not even core ones like !!str)",
                              node, path)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise self.refuse("E105", f"tag {_quote(node.tag)} is not allowed", node, path)
            return [self.build(item, _child(path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        raise self.refuse("E105", "unsupported YAML node", node, path)  # pragma: no cover

    def scalar(self, node: yaml.ScalarNode, path: str) -> Value:
        tag = node.tag
        if tag not in _ALLOWED_SCALAR_TAGS:
            raise self.refuse("E105", f"tag {_quote(tag)} is not allowed", node, path)
        if tag == _STR or tag == _TIMESTAMP:
            if "\x00" in node.value:  # an escaped "\0": Postgres text cannot store it
                raise self.refuse("E113", "NUL characters are not allowed in values", node, path)
            # a date-looking value (2024-01-01) stays the text the user wrote
            return str(node.value)
        # YAML 1.1 (what libyaml resolves) reads 0123 as octal, 1:30 as base 60, 1_000 as 1000,
        # yes/no/on/off as booleans and .nan/.inf as floats; a value sent upstream must be what
        # the engineer meant, so only the unambiguous YAML 1.2 core forms are accepted
        text = node.value
        if tag == _INT:
            if not _DECIMAL_INT.match(text):
                raise self.refuse("E113", f"ambiguous number {_quote(text)} (YAML 1.1 would read it as octal, hex, "
                                  "base 60 or with separators): write a plain decimal, or quote it", node, path)
            if len(text.lstrip("+-")) > MAX_INT_DIGITS:
                raise self.refuse("E122", f"integer of {len(text.lstrip('+-'))} digits (at most {MAX_INT_DIGITS})",
                                  node, path)
            return int(text)
        if tag == _FLOAT:
            if not _DECIMAL_FLOAT.match(text):
                raise self.refuse("E113", f"{_quote(text)} is not a finite decimal number: write one, or quote it",
                                  node, path)
            number = float(text)
            if not math.isfinite(number):
                raise self.refuse("E122", f"{_quote(text)} is too large for a number (it would become infinity)",
                                  node, path)
            if number == 0.0 and _NONZERO_MANTISSA.match(text):
                raise self.refuse("E122", f"{_quote(text)} is too small for a number (it would become 0)", node, path)
            return number
        if tag == _BOOL:
            if text not in _BOOLS:
                raise self.refuse("E113", f"{_quote(text)} is a boolean only in YAML 1.1: write true/false, or quote "
                                  "it for text", node, path)
            return _BOOLS[text]
        return None

    def mapping(self, node: yaml.MappingNode, path: str, depth: int) -> Value:
        if node.tag != _MAP:
            raise self.refuse("E105", f"tag {_quote(node.tag)} is not allowed", node, path)
        out: dict[str, Value] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                raise self.refuse("E104", "merge key '<<' refused", key_node, path)
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.refuse("E112", "mapping keys must be plain strings", key_node, path)
            if key_node.tag != _STR:
                # ``~: 1`` and ``1.50: 2`` would silently become "None" and "1.5"
                raise self.refuse("E121", f"mapping key {_quote(key_node.value)} is not a string: quote it",
                                  key_node, path)
            key = self.scalar(key_node, path)
            assert isinstance(key, str)
            child = _child(path, key)
            line = key_node.start_mark.line + 1
            if key in out or key in first_line:
                raise self.refuse(
                    "E102",
                    f"duplicate key {_quote(key)} (first defined on line {first_line[key]})",
                    key_node,
                    child,
                )
            first_line[key] = line
            km = key_node.start_mark
            packed = self.raw[child + "#key"] = km.line << 20 | km.column
            if self.tagged and packed in self.tagged:
                raise self.refuse("E105", "tags are not allowed, not even on keys", key_node, child)
            out[key] = self.build(value_node, child, depth + 1)
        return out


def load_documents(text: str, file: str, diags: Collector | None = None) -> tuple[list[Document], Collector]:
    """Compose every document of ``text`` and construct it strictly.

    A syntax error stops the file (libyaml cannot resume); a refusal inside one document skips
    that document but later documents are still read, so one run reports as much as it can.
    """
    docs: list[Document] = []
    diags = Collector(file) if diags is None else diags
    nodes: Iterator[yaml.Node | None] = yaml.compose_all(text, Loader=_LOADER)
    tagged = _explicit_tags(text)
    try:
        for node in nodes:
            if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
                mark = node.start_mark if node is not None else None
                diags.add(Diagnostic.make("E108", "empty YAML document", _src(file, mark)))
                continue
            builder = _Builder(file, text, node.start_mark.line, tagged)
            try:
                value = builder.build(node, "", 0)
            except _Refused as r:
                diags.add(r.diag)
                continue
            docs.append(Document(value, builder.marks, _src(file, node.start_mark)))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = e.problem or "syntax error"
        if e.context:
            what = f"{e.context}: {what}"
        diags.add(Diagnostic.make("E101", what, _src(file, mark)))
    except yaml.YAMLError as e:
        diags.add(Diagnostic.make("E101", str(e).splitlines()[0] if str(e) else "syntax error", SourceRange(file, 1, 1)))
    return docs, diags


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
