"""Load experiment files into a :class:`~expsync.model.DesiredState`, collecting diagnostics.

Stages, each reporting every problem it can before the next runs:

1. discover files (directories: ``**/*.yaml`` and ``**/*.yml``, sorted, following directory
   links inside the repository; files as given)                         -> E100
2. read bytes and decode (size checked before reading, never more read than the limit;
   binary, UTF-8)                                                        -> E100, E106, E107
3. strict YAML (:mod:`expsync.desired.yamlload`)           -> E101..E105, E108, E116, E121, E122
4. schema (:mod:`expsync.desired.schema`), each pydantic error mapped back
   to the YAML node it came from; at most :data:`MAX_VARIANTS` variants
   -> E109..E115, E120, E123, E204, E209, E401
5. cross-document rules (:mod:`expsync.desired.rules`)                      -> E2xx

A file reports at most :data:`MAX_DIAGNOSTICS_PER_FILE` diagnostics, then one ``E124``
counting the rest, so a hostile file cannot turn into megabytes of output.

Nothing here touches a database or resolves a secret.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from pydantic_core import ValidationError

from expsync.diagnostics import Diagnostic, SourceRange, has_errors, sort_diagnostics
from expsync.heap import long_lived
from expsync.model import DesiredExperiment, DesiredState, DesiredVariant, Status
from expsync.records import dataclass
from expsync.secrets.refs import parse_ref
from expsync.desired import rules
from expsync.desired.schema import PROTO_KEY, validator
from expsync.profiles import NEWEST, PROFILES, GatewayProfile
from expsync.desired.yamlload import (
    DEFAULT_MAX_FILE_SIZE,
    MAX_DIAGNOSTICS_PER_FILE,
    Collector,
    Document,
    decode,
    iter_documents,
)

DEFAULT_PATHS: Final = ("experiments",)
SUFFIXES: Final = (".yaml", ".yml")
#: variants per experiment (a domain limit: every variant is a live upstream with its own key,
#: and the gateway walks them per request); checked before the schema builds any of them
MAX_VARIANTS: Final = 100

# pydantic error type -> code; (field name, error type) wins over the plain type
_TYPE_CODES: Final = {
    "extra_forbidden": "E110",
    "missing": "E111",
    "literal_error": "E113",
    "enum": "E113",
    "string_too_short": "E113",
    "string_too_long": "E113",
    "string_pattern_mismatch": "E113",
    "uuid_parsing": "E113",
    "uuid_version": "E113",
    "greater_than_equal": "E113",
}
_FIELD_CODES: Final = {
    ("key", "string_pattern_mismatch"): "E115",
    ("weight", "greater_than_equal"): "E209",
    ("weight", "less_than_equal"): "E209",
}
_MESSAGES: Final = {
    "E115": "key must match [a-z0-9][a-z0-9._-]{0,99}",
    "E209": "weight must be a positive integer below 2^31",
}


@dataclass(frozen=True, slots=True)
class LoadOptions:
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    #: the gateway profile the documents are validated against (see expsync.profiles)
    profile: str = NEWEST


def _why(path: Path, err: OSError) -> str:
    try:
        if path.is_symlink():
            return "broken symbolic link"
    except OSError:
        pass
    return err.strerror or "cannot be read"


def discover(paths: Sequence[str]) -> tuple[list[Path], list[Diagnostic]]:
    """The YAML files to read. Anything that cannot be read is an ``E100`` error, never
    skipped: a silently missing file would look like "removed from git" and the plan would
    delete or release what it describes."""
    found: list[tuple[Path, Path]] = []  # (as named, resolved)
    diags: list[Diagnostic] = []
    cwd = Path.cwd().resolve()
    for raw in paths or DEFAULT_PATHS:
        if raw == "":
            diags.append(Diagnostic.make("E100", "empty path", SourceRange("''")))
            continue
        p = Path(raw)
        try:
            st = p.stat()
        except OSError as e:
            diags.append(Diagnostic.make("E100", _why(p, e), SourceRange(str(p))))
            continue
        if stat.S_ISDIR(st.st_mode):
            here = p.resolve()
            _Walk(repository_root(here, cwd), found, diags).folder(p, str(p), here)
        elif stat.S_ISREG(st.st_mode):
            found.append((p, p.resolve()))
        else:
            diags.append(Diagnostic.make("E100", "not a regular file or directory", SourceRange(str(p))))
    seen: set[Path] = set()
    unique = []
    for f, r in found:
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique, diags


class _Walk:
    """The YAML files under a folder, sorted, as ``os.walk`` (top-down, following links) would
    list them, from one ``scandir`` per folder. Links are followed (a linked folder of
    experiments must not look deleted), but only inside ``repo`` and never round a loop. A
    plain regular file costs no system call beyond the listing; links and anything odd take
    the careful path (``stat``, ``resolve``)."""

    def __init__(self, repo: Path, found: list[tuple[Path, Path]], diags: list[Diagnostic]) -> None:
        self.repo = repo
        self.found = found
        self.diags = diags
        self.visited: set[Path] = set()

    def unreadable(self, path: str, why: str) -> None:
        self.diags.append(Diagnostic.make("E100", why, SourceRange(path)))

    def folder(self, path: Path, name: str, here: Path) -> None:
        """``path`` (``name`` as ``os.walk`` spells it), whose resolved form is ``here``."""
        if here in self.visited:  # a second link to a folder already read
            return
        try:
            with os.scandir(name) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            self.unreadable(str(err.filename or name), err.strerror or "cannot be read")
            return
        self.visited.add(here)
        subfolders = []
        files = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                kept = self._subfolder(path, entry, here)
                if kept is not None:
                    subfolders.append(kept)
            elif entry.name.endswith(SUFFIXES):
                files.append(entry)
        for entry in files:
            self._file(path, entry, here)
        for sub, sub_here, entry in subfolders:
            self.folder(sub, os.path.join(name, entry.name), sub_here)

    def _subfolder(self, path: Path, entry: os.DirEntry[str], here: Path
                   ) -> tuple[Path, Path, os.DirEntry[str]] | None:
        sub = path / entry.name
        if not entry.is_symlink():
            return sub, here / entry.name, entry
        target = sub.resolve()
        if not target.is_relative_to(self.repo):
            self.unreadable(str(sub), f"symbolic link to a folder outside the repository ({self.repo})")
            return None
        if here.is_relative_to(target):
            self.unreadable(str(sub), "symbolic link loop (points to a folder that contains it)")
            return None
        return sub, target, entry

    def _file(self, path: Path, entry: os.DirEntry[str], here: Path) -> None:
        f = path / entry.name
        if not entry.is_symlink() and entry.is_file(follow_symlinks=False):
            self.found.append((f, here / entry.name))
            return
        try:
            fst = f.stat()
        except OSError as e:
            self.unreadable(str(f), _why(f, e))
            return
        if f.is_symlink() and not f.resolve().is_relative_to(self.repo):
            self.unreadable(str(f), f"symbolic link to a file outside the repository ({self.repo})")
        elif stat.S_ISREG(fst.st_mode):
            self.found.append((f, f.resolve()))
        else:
            self.unreadable(str(f), "not a regular file")


def repository_root(folder: Path, cwd: Path) -> Path:
    """The git work tree holding ``folder`` (nearest ancestor with ``.git``); outside git, the
    working directory when ``folder`` is inside it, else ``folder`` itself."""
    for d in (folder, *folder.parents):
        if (d / ".git").exists():
            return d
    return cwd if folder.is_relative_to(cwd) else folder


def _path_of(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else (f"{out}.{part}" if out else str(part))
    return out


def _locate(doc: Document, path: str, error_type: str) -> SourceRange:
    if error_type == "extra_forbidden" and path + "#key" in doc.marks:
        return doc.marks[path + "#key"]
    p = path
    while p:
        if p in doc.marks:
            return doc.marks[p]
        cut = max(p.rfind("."), p.rfind("["))
        p = p[:cut] if cut > 0 else ""
    return doc.marks.get("", doc.start)


def proto_keys(doc: Document) -> list[Diagnostic]:
    """``__proto__`` anywhere as a mapping key: the gateway's JSON handling drops it silently,
    so the gateway would send something other than what the plan shows (E142)."""
    out: list[Diagnostic] = []
    if PROTO_KEY + "#key" not in "\n".join(doc.marks.raw):  # every key's path is recorded there
        return out

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                sub = f"{path}.{k}" if path else str(k)
                if k == PROTO_KEY:
                    out.append(Diagnostic.make("E142", "the key '__proto__' is dropped by the gateway's JSON parser",
                                               _locate(doc, sub, "extra_forbidden"), path=sub))
                else:
                    walk(v, sub)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(doc.value, "")
    return out


def _profile_field(profile: GatewayProfile, loc: tuple[str | int, ...]) -> tuple[str, str, str] | None:
    """(code, message, hint) for a field that is unknown here but belongs to another gateway
    profile: moved in this profile (E140) or only known to another one (E141)."""
    field = loc[-1]
    if not isinstance(field, str):
        return None
    in_upstream = len(loc) == 4 and loc[0] == "variants" and loc[2] == "upstream"
    if in_upstream and field in profile.moved_upstream_fields:
        return ("E140", f"{field} is not an upstream field in gateway profile {profile.name}",
                profile.moved_upstream_fields[field])
    others = [p for p in PROFILES.values() if p is not profile]
    if in_upstream:
        owners = [p.name for p in others if field in p.upstream]
    elif len(loc) == 1 and field == "metadata":
        owners = [p.name for p in others if p.has_metadata]
    else:
        owners = []
    if owners:
        return ("E141", f"{field} exists only in gateway profile {', '.join(owners)}, not in {profile.name}",
                f"choose the gateway profile the gateway runs (--gateway-profile, EXPSYNC_GATEWAY_PROFILE or "
                f"expsync.toml), or remove {field}")
    return None


def schema_diagnostics(err: ValidationError, doc: Document, profile: GatewayProfile | None = None
                       ) -> Iterator[Diagnostic]:
    """One diagnostic per pydantic error, lazily (a capped collector stops building them)."""
    for e in err.errors(include_input=False, include_url=False):
        loc = tuple(e["loc"])
        ctx = e.get("ctx") or {}
        path = _path_of(loc) + str(ctx.get("subpath", ""))
        etype = e["type"]
        field = next((p for p in reversed(loc) if isinstance(p, str)), "")
        if field == PROTO_KEY:
            continue  # reported once as E142 by proto_keys
        moved = _profile_field(profile, loc) if profile is not None and etype == "extra_forbidden" else None
        if moved is not None:
            code, message, hint = moved
            yield Diagnostic.make(code, message, _locate(doc, path, etype), path=path, hint=hint)
            continue
        if etype.startswith("expsync_"):
            code = etype.removeprefix("expsync_")
        else:
            code = _FIELD_CODES.get((field, etype)) or _TYPE_CODES.get(etype, "E112")
        message = _MESSAGES.get(code, e["msg"])
        if etype == "extra_forbidden":
            message = f"unknown field {field!r}"
        elif etype == "missing":
            message = f"missing required field {field!r}"
        where = _locate(doc, path, "extra_forbidden" if ctx.get("key") else etype)
        yield Diagnostic.make(code, message, where, path=path)


def to_desired(fields: dict[str, Any], doc: Document) -> DesiredExperiment:
    """The desired experiment from the validated document (:func:`expsync.desired.schema.validator`):
    every field present, absent optional ones at their default; ``upstream`` and ``metadata`` hold
    only what was written. A variant without a ``key`` is identified by its label."""
    variants = []
    for i, v in enumerate(fields["variants"]):
        key = v["key"]
        variants.append(
            DesiredVariant(
                key=v["label"] if key is None else key,
                label=v["label"],
                weight=v["weight"],
                upstream=v["upstream"],
                api_key=parse_ref(v["api_key"], doc.marks.get(f"variants[{i}].api_key")),
                id=v["id"],
            )
        )
    return DesiredExperiment(
        key=fields["key"],
        public_model_id=fields["public_model_id"],
        name=fields["name"],
        description=fields["description"],
        status=Status(fields["status"]),
        archived=fields["archived"],
        variants=tuple(variants),
        id=fields["id"],
        metadata=fields.get("metadata"),
        sources=doc.marks,
    )


def display_name(path: Path) -> str:
    """How a file is named in diagnostics: relative to the working directory when inside it."""
    if not path.is_absolute():
        return str(path)
    text = str(path)
    here = os.getcwd()
    if os.sep == "/" and ".." not in path.parts and not text.startswith("//") and text != here:
        # both are normalised absolute paths: what ``os.path.relpath`` would say, without its splitting
        inside = here if here.endswith("/") else here + "/"
        return text[len(inside):] if text.startswith(inside) else text
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def read_limited(path: Path, name: str, limit: int) -> tuple[bytes | None, Diagnostic | None]:
    """At most ``limit`` bytes of a regular file: the size is checked on the open file before
    anything is read, and never more than ``limit + 1`` bytes are read (a file growing
    meanwhile is still refused). Opened non-blocking, so a FIFO swapped in cannot hang."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        return None, Diagnostic.make("E100", e.strerror or "cannot read file", SourceRange(name))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, Diagnostic.make("E100", "not a regular file", SourceRange(name))
        if st.st_size > limit:
            return None, Diagnostic.make("E106", f"file is {st.st_size} bytes, over the {limit}-byte limit",
                                         SourceRange(name, 1, 1))
        chunks = []
        left = limit + 1
        want = st.st_size + 1  # the whole file and its end in one read, unless it grows meanwhile
        while left > 0:
            chunk = os.read(fd, min(left, want))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
            want = 1 << 20
    except OSError as e:
        return None, Diagnostic.make("E100", e.strerror or "cannot read file", SourceRange(name))
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) > limit:
        return None, Diagnostic.make("E106", f"file is over the {limit}-byte limit", SourceRange(name, 1, 1))
    return data, None


def load_file(path: Path, options: LoadOptions) -> tuple[list[DesiredExperiment], list[Diagnostic]]:
    name = display_name(path)
    data, bad = read_limited(path, name, options.max_file_size)
    if data is None:
        return [], [bad] if bad else []
    text, bad = decode(data, name, options.max_file_size)
    del data
    if bad is not None or text is None:
        return [], [bad] if bad else []
    diags = Collector(name, MAX_DIAGNOSTICS_PER_FILE)
    experiments = []
    profile = PROFILES[options.profile]
    schema = validator(profile.name)
    documents = 0
    # each document is validated as soon as it is read, so only valid ones stay in memory
    for doc in iter_documents(text, name, diags):
        documents += 1
        if not isinstance(doc.value, dict):
            diags.add(Diagnostic.make("E109", "document must be a mapping (one experiment)", doc.start))
            continue
        variants = doc.value.get("variants")
        if isinstance(variants, list) and len(variants) > MAX_VARIANTS:
            # refused before the schema: 150,000 variants would become 300,000 errors
            diags.add(Diagnostic.make("E123", f"{len(variants)} variants; an experiment has at most {MAX_VARIANTS}",
                                      doc.marks.get("variants", doc.start), path="variants"))
            continue
        protos = proto_keys(doc)
        diags.extend(protos)
        try:
            fields = schema.validate_python(doc.value)
        except ValidationError as err:
            if diags.full:
                diags.more += err.error_count()
            else:
                diags.extend(schema_diagnostics(err, doc, profile))
            continue
        if protos:
            continue
        experiments.append(to_desired(fields, doc))
    if not documents and not diags:
        diags.add(Diagnostic.make("E108", "file holds no experiment document", SourceRange(name, 1, 1)))
    return experiments, diags.result()


def load_desired(
    paths: Sequence[str], options: LoadOptions | None = None
) -> tuple[DesiredState, list[Diagnostic]]:
    """Load and validate every file. The state holds only documents that passed the schema;
    callers must check ``has_errors(diagnostics)`` before using it."""
    options = options or LoadOptions()
    with long_lived():
        files, diags = discover(paths)
        experiments: list[DesiredExperiment] = []
        for f in files:
            exps, file_diags = load_file(f, options)
            experiments.extend(exps)
            diags.extend(file_diags)
        diags.extend(rules.check(experiments))
        by_key: dict[str, DesiredExperiment] = {}
        for e in experiments:
            by_key.setdefault(e.key, e)
        return DesiredState(by_key), sort_diagnostics(diags)


__all__ = ["LoadOptions", "load_desired", "has_errors", "DEFAULT_PATHS"]
