"""``env:`` and ``file:`` references."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from expsync.diagnostics import Diagnostic
from expsync.model import Secret, SecretRef
from expsync.secrets import resolve_all
from expsync.secrets.refs import parse_ref


def resolve_one(text: str, *, environ: dict[str, str] | None = None, cwd: Path) -> Secret | Diagnostic:
    ref = parse_ref(text)
    secrets, diags = resolve_all([ref], environ=environ or {}, cwd=cwd)
    assert len(secrets) + len(diags) == 1
    return secrets[ref] if secrets else diags[0]


def value(outcome: Secret | Diagnostic) -> str:
    assert isinstance(outcome, Secret), outcome
    return outcome.reveal()


def code(outcome: Secret | Diagnostic) -> str:
    assert isinstance(outcome, Diagnostic), "expected a failure"
    return outcome.code


# env: --------------------------------------------------------------------------------------


def test_env_reference_reads_the_given_environ_not_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOO_KEY", "from-os-environ")
    assert value(resolve_one("env:FOO_KEY", environ={"FOO_KEY": "sk-foo-1"}, cwd=tmp_path)) == "sk-foo-1"
    assert code(resolve_one("env:FOO_KEY", environ={}, cwd=tmp_path)) == "E402"


def test_missing_env_var_is_e402_naming_the_variable(tmp_path: Path) -> None:
    diag = resolve_one("env:FOO_KEY", environ={"OTHER": "x"}, cwd=tmp_path)
    assert isinstance(diag, Diagnostic)
    assert diag.code == "E402"
    assert "env:FOO_KEY" in diag.message and "FOO_KEY is not set" in diag.message
    assert "FOO_KEY" in diag.hint


@pytest.mark.parametrize("empty", ["", "   ", "\n"])
def test_empty_env_var_is_e405(tmp_path: Path, empty: str) -> None:
    assert code(resolve_one("env:FOO_KEY", environ={"FOO_KEY": empty}, cwd=tmp_path)) == "E405"


def test_env_value_is_kept_verbatim(tmp_path: Path) -> None:
    # Only file: strips line breaks; an env value is exactly what the caller exported.
    assert value(resolve_one("env:K", environ={"K": " sk-x "}, cwd=tmp_path)) == " sk-x "


# file: -------------------------------------------------------------------------------------


def test_relative_file_path_is_resolved_against_cwd(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "foo.txt").write_text("sk-file-1\n")
    assert value(resolve_one("file:keys/foo.txt", cwd=tmp_path)) == "sk-file-1"
    # and not against the process's working directory
    assert code(resolve_one("file:keys/foo.txt", cwd=tmp_path / "keys")) == "E402"


def test_absolute_file_path_ignores_cwd(tmp_path: Path) -> None:
    path = tmp_path / "abs.txt"
    path.write_text("sk-abs")
    assert value(resolve_one(f"file:{path}", cwd=Path("/nonexistent"))) == "sk-abs"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"sk-1\n", "sk-1"),
        (b"sk-1\r\n", "sk-1"),
        (b"sk-1\n\n", "sk-1"),
        (b"sk-1", "sk-1"),
        (b"  sk-1 \n", "  sk-1 "),  # only line breaks at the end are stripped
        (b"line1\nline2\n", "line1\nline2"),
    ],
)
def test_trailing_newlines_are_stripped(tmp_path: Path, content: bytes, expected: str) -> None:
    (tmp_path / "k").write_bytes(content)
    assert value(resolve_one("file:k", cwd=tmp_path)) == expected


def test_missing_file_is_e402(tmp_path: Path) -> None:
    diag = resolve_one("file:nope.txt", cwd=tmp_path)
    assert isinstance(diag, Diagnostic) and diag.code == "E402"
    assert "file:nope.txt" in diag.message and "does not exist" in diag.message


@pytest.mark.parametrize("content", [b"", b"\n", b"\r\n\r\n", b"   \n"])
def test_empty_file_is_e405(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "k").write_bytes(content)
    assert code(resolve_one("file:k", cwd=tmp_path)) == "E405"


def test_directory_is_not_a_key_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    assert code(resolve_one("file:d", cwd=tmp_path)) == "E402"


def test_unreadable_file_is_e403(tmp_path: Path) -> None:
    """Root reads any file, so as root the check runs in a child process as user nobody."""
    path = tmp_path / "k"
    path.write_text("sk-x")
    path.chmod(0)
    try:
        if os.geteuid() != 0:
            assert code(resolve_one("file:k", cwd=tmp_path)) == "E403"
            return
        pid = os.fork()  # the child drops to user nobody; imports are already loaded
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.setgid(65534)
                os.setuid(65534)
                os._exit(0 if code(resolve_one("file:k", cwd=tmp_path)) == "E403" else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        path.chmod(0o600)


def test_binary_or_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00sk")
    (tmp_path / "big").write_bytes(b"a" * (64 * 1024 + 1))
    assert code(resolve_one("file:bin", cwd=tmp_path)) == "E405"
    assert code(resolve_one("file:big", cwd=tmp_path)) == "E405"
    if Path("/dev/zero").exists():
        assert code(resolve_one("file:/dev/zero", cwd=tmp_path)) == "E410"  # a device: never opened


def test_file_ref_keeps_its_scheme_distinct_from_env(tmp_path: Path) -> None:
    (tmp_path / "K").write_text("from-file")
    secrets, diags = resolve_all(
        [SecretRef("env", "K"), SecretRef("file", "K")], environ={"K": "from-env"}, cwd=tmp_path
    )
    assert not diags
    assert secrets[SecretRef("env", "K")].reveal() == "from-env"
    assert secrets[SecretRef("file", "K")].reveal() == "from-file"


def test_env_value_that_is_not_utf8_is_e405() -> None:
    import os as _os

    raw = _os.fsdecode(b"sk-\xff\xfe-abcdef")  # how Python exposes undecodable environment bytes
    s, d = resolve_all([SecretRef("env", "K")], environ={"K": raw}, cwd=Path("/"))
    assert not s and [x.code for x in d] == ["E405"]
