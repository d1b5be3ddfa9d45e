"""Strict YAML loading: libyaml's composer, then our own constructor that keeps node marks.

Why not ``yaml.load``: it silently lets the last duplicate key win, expands aliases (an "alias
bomb" of a few hundred bytes becomes millions of nodes), honours merge keys and tags, and
forgets where each value came from. Here ``yaml.compose_all`` (C, via ``CSafeLoader``) builds
the node graph - aliases stay *shared* nodes there, so nothing is expanded - and
:func:`construct` walks it once, refusing:

* a node reached twice (an alias; detected by identity before any expansion)   E103
* merge keys ``<<``                                                              E104
* any tag outside the plain JSON-like core schema                                E105
* duplicate mapping keys, naming both lines                                      E102
* nesting deeper than :data:`MAX_DEPTH`                                          E116

and recording, for every value, its ``file:line:col`` under a path such as
``variants[1].upstream.base_url`` (``path + "#key"`` holds the mark of a mapping key itself).
Unused anchors cannot be seen after composition and are harmless, so they are not refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import yaml

from expsync.desired.limits import DEFAULT_MAX_FILE_SIZE
from expsync.diagnostics import Diagnostic, SourceRange

#: libyaml is the supported configuration; the pure-Python loader is only a fallback.
_LOADER: Final[type] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_DEPTH: Final = 64

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
_BOOLS: Final = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document: its value, where each path sits, and where the document starts."""

    value: Value
    marks: Marks
    start: SourceRange


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


class _Builder:
    def __init__(self, file: str, text: str, doc_line: int) -> None:
        self.file = file
        self.text = text
        self.doc_line = doc_line
        self.marks = Marks(file)
        self.raw = self.marks.raw
        self.seen: set[int] = set()

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
        m = node.start_mark
        self.raw[path] = m.line << 20 | m.column
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise self.refuse("E105", f"tag {node.tag!r} is not allowed", node, path)
            return [self.build(item, _child(path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        raise self.refuse("E105", "unsupported YAML node", node, path)  # pragma: no cover

    def scalar(self, node: yaml.ScalarNode, path: str) -> Value:
        tag = node.tag
        if tag not in _ALLOWED_SCALAR_TAGS:
            raise self.refuse("E105", f"tag {tag!r} is not allowed", node, path)
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
            if not _DECIMAL_INT.fullmatch(text):
                raise self.refuse("E113", f"ambiguous number {text!r} (YAML 1.1 would read it as octal, hex, "
                                  "base 60 or with separators): write a plain decimal, or quote it", node, path)
            return int(text)
        if tag == _FLOAT:
            if not _DECIMAL_FLOAT.fullmatch(text):
                raise self.refuse("E113", f"{text!r} is not a finite decimal number: write one, or quote it",
                                  node, path)
            return float(text)
        if tag == _BOOL:
            if text not in _BOOLS:
                raise self.refuse("E113", f"{text!r} is a boolean only in YAML 1.1: write true/false, or quote it "
                                  "for text", node, path)
            return _BOOLS[text]
        return None

    def mapping(self, node: yaml.MappingNode, path: str, depth: int) -> Value:
        if node.tag != _MAP:
            raise self.refuse("E105", f"tag {node.tag!r} is not allowed", node, path)
        out: dict[str, Value] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                raise self.refuse("E104", "merge key '<<' refused", key_node, path)
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.refuse("E112", "mapping keys must be plain strings", key_node, path)
            raw = self.scalar(key_node, path)
            key = raw if isinstance(raw, str) else str(raw).lower() if isinstance(raw, bool) else str(raw)
            child = _child(path, key)
            line = key_node.start_mark.line + 1
            if key in out or key in first_line:
                raise self.refuse(
                    "E102",
                    f"duplicate key {key!r} (first defined on line {first_line[key]})",
                    key_node,
                    child,
                )
            first_line[key] = line
            km = key_node.start_mark
            self.raw[child + "#key"] = km.line << 20 | km.column
            out[key] = self.build(value_node, child, depth + 1)
        return out


def load_documents(text: str, file: str) -> tuple[list[Document], list[Diagnostic]]:
    """Compose every document of ``text`` and construct it strictly.

    A syntax error stops the file (libyaml cannot resume); a refusal inside one document skips
    that document but later documents are still read, so one run reports as much as it can.
    """
    docs: list[Document] = []
    diags: list[Diagnostic] = []
    nodes: Iterator[yaml.Node | None] = yaml.compose_all(text, Loader=_LOADER)
    try:
        for node in nodes:
            if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
                mark = node.start_mark if node is not None else None
                diags.append(Diagnostic.make("E108", "empty YAML document", _src(file, mark)))
                continue
            builder = _Builder(file, text, node.start_mark.line)
            try:
                value = builder.build(node, "", 0)
            except _Refused as r:
                diags.append(r.diag)
                continue
            docs.append(Document(value, builder.marks, _src(file, node.start_mark)))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = e.problem or "syntax error"
        if e.context:
            what = f"{e.context}: {what}"
        diags.append(Diagnostic.make("E101", what, _src(file, mark)))
    except yaml.YAMLError as e:
        diags.append(Diagnostic.make("E101", str(e).splitlines()[0] if str(e) else "syntax error", SourceRange(file, 1, 1)))
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
