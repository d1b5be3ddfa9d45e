"""``resolve_all``: one resolution per distinct reference, one diagnostic per use."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from expsync.diagnostics import SourceRange
from expsync.model import DesiredExperiment, DesiredState, DesiredVariant, SecretRef, Status
from expsync.secrets import RESOLVERS, Redactor, ResolveContext, SecretUse, resolve_all, uses_in
from expsync.secrets.base import Outcome
from expsync.secrets.env import EnvResolver
from expsync.secrets.refs import SCHEMES, parse_ref


class CountingResolver:
    """Wraps a real resolver and records every batch it is asked to resolve."""

    def __init__(self, inner: EnvResolver) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []

    def resolve(self, refs: Sequence[SecretRef], ctx: ResolveContext) -> dict[SecretRef, Outcome]:
        self.batches.append([str(r) for r in refs])
        return self.inner.resolve(refs, ctx)


class ExplodingResolver:
    def resolve(self, refs: Sequence[SecretRef], ctx: ResolveContext) -> dict[SecretRef, Outcome]:
        raise RuntimeError("client blew up with sk-should-not-show")


def at(line: int, file: str = "experiments/a.yaml") -> SourceRange:
    return SourceRange(file, line, 14)


def test_registry_covers_exactly_the_parser_schemes() -> None:
    assert set(RESOLVERS) == set(SCHEMES)


def test_each_distinct_reference_is_resolved_once(tmp_path: Path) -> None:
    counting = CountingResolver(EnvResolver())
    refs = [
        parse_ref("env:A", at(3)),
        parse_ref("env:B", at(9)),
        parse_ref("env:A", at(15)),
        parse_ref("env:A", at(4, "experiments/b.yaml")),
        parse_ref("env:B", at(21)),
    ]
    secrets, diags = resolve_all(
        refs, environ={"A": "sk-a", "B": "sk-b"}, cwd=tmp_path, resolvers={**RESOLVERS, "env": counting}
    )
    assert counting.batches == [["env:A", "env:B"]]
    assert not diags
    assert {str(ref): s.reveal() for ref, s in secrets.items()} == {"env:A": "sk-a", "env:B": "sk-b"}
    # equality ignores the source: any use's ref finds the value
    assert secrets[refs[3]].reveal() == "sk-a"


def test_a_failing_reference_reports_every_use_with_its_location_and_path(tmp_path: Path) -> None:
    uses = [
        SecretUse(parse_ref("env:MISSING", at(8)), "variants[0].api_key", "foo"),
        SecretUse(parse_ref("env:OK", at(14)), "variants[1].api_key", "foo"),
        SecretUse(parse_ref("env:MISSING", at(5, "experiments/b.yaml")), "variants[1].api_key", "bar"),
    ]
    secrets, diags = resolve_all(uses, environ={"OK": "sk-ok"}, cwd=tmp_path)
    assert [str(r) for r in secrets] == ["env:OK"]
    assert [(d.code, str(d.source), d.path, d.experiment) for d in diags] == [
        ("E402", "experiments/a.yaml:8:14", "variants[0].api_key", "foo"),
        ("E402", "experiments/b.yaml:5:14", "variants[1].api_key", "bar"),
    ]
    assert all(d.message == "cannot resolve env:MISSING: environment variable MISSING is not set" for d in diags)
    assert diags[0].format().startswith("experiments/a.yaml:8:14: variants[0].api_key: cannot resolve env:MISSING")


def test_bare_refs_and_uses_can_be_mixed_and_use_source_overrides(tmp_path: Path) -> None:
    uses: list[SecretRef | SecretUse] = [parse_ref("env:X"), SecretUse(parse_ref("env:X"), "p", source=at(2))]
    _, diags = resolve_all(uses, environ={}, cwd=tmp_path)
    assert [(d.source, d.path) for d in diags] == [(None, ""), (at(2), "p")]


def test_uses_in_walks_every_variant_of_the_desired_state(tmp_path: Path) -> None:
    def variant(key: str, ref: str, line: int) -> DesiredVariant:
        return DesiredVariant(key, key, 1, {"internal_id": key}, parse_ref(ref, at(line)))

    exp = DesiredExperiment(
        key="foo",
        public_model_id="p/foo",
        name="Foo",
        description=None,
        status=Status.DRAFT,
        archived=False,
        variants=(variant("rc1", "env:K1", 10), variant("rc2", "env:K2", 16)),
    )
    uses = list(uses_in(DesiredState({"foo": exp})))
    assert [(u.path, u.experiment, u.where) for u in uses] == [
        ("variants[0].api_key", "foo", at(10)),
        ("variants[1].api_key", "foo", at(16)),
    ]
    _, diags = resolve_all(uses, environ={"K1": "sk-1"}, cwd=tmp_path)
    assert [(d.path, d.experiment, d.source) for d in diags] == [("variants[1].api_key", "foo", at(16))]


def test_an_unexpected_resolver_error_becomes_e406_not_an_exception(tmp_path: Path) -> None:
    secrets, diags = resolve_all(
        [parse_ref("env:A"), parse_ref("file:x")],
        environ={"A": "sk-a"},
        cwd=tmp_path,
        resolvers={**RESOLVERS, "file": ExplodingResolver()},
    )
    assert [str(r) for r in secrets] == ["env:A"]
    assert [d.code for d in diags] == ["E406"]
    assert "RuntimeError" in diags[0].message
    assert "sk-should-not-show" not in diags[0].message


def test_resolved_values_are_registered_with_the_redactor(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("sk-from-file-9\n")
    redactor = Redactor()
    refs = [parse_ref("env:A"), parse_ref("file:k")]
    resolve_all(refs, environ={"A": "sk-from-env-1"}, cwd=tmp_path, redactor=redactor)
    assert redactor.redact("a=sk-from-env-1 b=sk-from-file-9") == "a=*** b=***"


def test_nothing_to_resolve_is_fine(tmp_path: Path) -> None:
    assert resolve_all([], environ={}, cwd=tmp_path) == ({}, [])
