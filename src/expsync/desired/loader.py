"""Load experiment files into a :class:`~expsync.model.DesiredState`, collecting diagnostics.

Stages, each reporting every problem it can before the next runs:

1. discover files (directories: ``**/*.yaml`` and ``**/*.yml``, sorted; files as given)
2. read bytes and decode (size limit, binary, UTF-8)                    -> E100, E106, E107
3. strict YAML (:mod:`expsync.desired.yamlload`)                            -> E101..E105, E108, E116
4. schema (:mod:`expsync.desired.schema`), each pydantic error mapped back
   to the YAML node it came from                                         -> E109..E115, E204, E209, E401
5. cross-document rules (:mod:`expsync.desired.rules`)                      -> E2xx

Nothing here touches a database or resolves a secret.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from expsync.diagnostics import Diagnostic, SourceRange, has_errors, sort_diagnostics
from expsync.model import DesiredExperiment, DesiredState, DesiredVariant, Status
from expsync.secrets.refs import parse_ref
from expsync.desired import rules
from expsync.desired.schema import PROTO_KEY, Experiment, experiment_model
from expsync.profiles import NEWEST, PROFILES, GatewayProfile
from expsync.desired.yamlload import DEFAULT_MAX_FILE_SIZE, Document, decode, load_documents

DEFAULT_PATHS: Final = ("experiments",)
SUFFIXES: Final = (".yaml", ".yml")

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


def discover(paths: Sequence[str]) -> tuple[list[Path], list[Diagnostic]]:
    """The YAML files to read. Anything that cannot be read is an ``E100`` error, never
    skipped: a silently missing file would look like "removed from git" and the plan would
    delete or release what it describes."""
    files: list[Path] = []
    diags: list[Diagnostic] = []

    def unreadable(path: str, why: str) -> None:
        diags.append(Diagnostic.make("E100", why, SourceRange(path)))

    def why(path: Path, err: OSError) -> str:
        try:
            if path.is_symlink():
                return "broken symbolic link"
        except OSError:
            pass
        return err.strerror or "cannot be read"

    for raw in paths or DEFAULT_PATHS:
        if raw == "":
            unreadable("''", "empty path")
            continue
        p = Path(raw)
        try:
            st = p.stat()
        except OSError as e:
            unreadable(str(p), why(p, e))
            continue
        if stat.S_ISDIR(st.st_mode):
            def on_error(err: OSError) -> None:
                unreadable(str(err.filename or p), err.strerror or "cannot be read")

            for root, dirnames, names in os.walk(p, onerror=on_error, followlinks=False):
                dirnames.sort()
                for name in sorted(names):
                    if not name.endswith(SUFFIXES):
                        continue
                    f = Path(root) / name
                    try:
                        fst = f.stat()
                    except OSError as e:
                        unreadable(str(f), why(f, e))
                        continue
                    if stat.S_ISREG(fst.st_mode):
                        files.append(f)
                    else:
                        unreadable(str(f), "not a regular file")
        elif stat.S_ISREG(st.st_mode):
            files.append(p)
        else:
            unreadable(str(p), "not a regular file or directory")
    seen: set[Path] = set()
    unique = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique, diags


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


def schema_diagnostics(err: ValidationError, doc: Document, profile: GatewayProfile | None = None) -> list[Diagnostic]:
    out = []
    for e in err.errors(include_input=False, include_url=False):
        loc = tuple(e["loc"])
        path = _path_of(loc)
        etype = e["type"]
        field = next((p for p in reversed(loc) if isinstance(p, str)), "")
        if field == PROTO_KEY:
            continue  # reported once as E142 by proto_keys
        moved = _profile_field(profile, loc) if profile is not None and etype == "extra_forbidden" else None
        if moved is not None:
            code, message, hint = moved
            out.append(Diagnostic.make(code, message, _locate(doc, path, etype), path=path, hint=hint))
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
        out.append(Diagnostic.make(code, message, _locate(doc, path, etype), path=path))
    return out


def to_desired(model: Experiment, doc: Document) -> DesiredExperiment:
    variants = []
    for i, v in enumerate(model.variants):
        prefix = f"variants[{i}]"
        variants.append(
            DesiredVariant(
                key=v.effective_key,
                label=v.label,
                weight=v.weight,
                upstream=v.upstream_json(),
                api_key=parse_ref(v.api_key, doc.marks.get(prefix + ".api_key")),
                id=v.id,
            )
        )
    return DesiredExperiment(
        key=model.key,
        public_model_id=model.public_model_id,
        name=model.name,
        description=model.description,
        status=Status(model.status),
        archived=model.archived,
        variants=tuple(variants),
        id=model.id,
        metadata=model.metadata_json(),
        sources=doc.marks,
    )


def display_name(path: Path) -> str:
    """How a file is named in diagnostics: relative to the working directory when inside it."""
    if not path.is_absolute():
        return str(path)
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def load_file(path: Path, options: LoadOptions) -> tuple[list[DesiredExperiment], list[Diagnostic]]:
    name = display_name(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        return [], [Diagnostic.make("E100", e.strerror or "cannot read file", SourceRange(name))]
    text, bad = decode(data, name, options.max_file_size)
    if bad is not None or text is None:
        return [], [bad] if bad else []
    docs, diags = load_documents(text, name)
    if not docs and not diags:
        diags.append(Diagnostic.make("E108", "file holds no experiment document", SourceRange(name, 1, 1)))
    experiments = []
    profile = PROFILES[options.profile]
    model_type = experiment_model(profile.name)
    for doc in docs:
        if not isinstance(doc.value, dict):
            diags.append(Diagnostic.make("E109", "document must be a mapping (one experiment)", doc.start))
            continue
        protos = proto_keys(doc)
        diags.extend(protos)
        try:
            model = model_type.model_validate(doc.value)
        except ValidationError as err:
            diags.extend(schema_diagnostics(err, doc, profile))
            continue
        if protos:
            continue
        experiments.append(to_desired(model, doc))
    return experiments, diags


def load_desired(
    paths: Sequence[str], options: LoadOptions | None = None
) -> tuple[DesiredState, list[Diagnostic]]:
    """Load and validate every file. The state holds only documents that passed the schema;
    callers must check ``has_errors(diagnostics)`` before using it."""
    options = options or LoadOptions()
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
