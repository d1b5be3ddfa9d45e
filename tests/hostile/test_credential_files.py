"""``file:`` references into credential stores that the runner itself holds: the token
``actions/checkout`` writes into ``.git/config``, cloud CLI credentials, and the platform's
service-account tokens, which the README's own example pattern ``file:/run/secrets/*`` matched."""

from __future__ import annotations

from pathlib import Path

import pytest

from expsync.secrets import Redactor, resolve_all
from expsync.secrets.policy import Policy, file_refusal
from expsync.secrets.refs import parse_ref

VALUE = "AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hzX0NBTkFSWQ=="


@pytest.mark.parametrize("locator", [".git/config", "./.git/config", "sub/../.git/config", ".git-credentials",
                                     "home/.aws/credentials", "home/.docker/config.json", "home/.netrc",
                                     "home/.ssh/id_ed25519", "home/.kube/config", "home/.config/gh/hosts.yml"])
def test_credential_stores_in_the_work_tree_are_refused_even_with_the_catch_all(tmp_path: Path, locator: str) -> None:
    target = tmp_path / locator
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(VALUE)
    red = Redactor()
    secrets, diags = resolve_all([parse_ref(f"file:{locator}")], environ={"EXPSYNC_SECRET_REFS": "*"},
                                 cwd=tmp_path, redactor=red)
    assert not secrets and [d.code for d in diags] == ["E410"], diags
    assert red.redact(VALUE) == VALUE  # never read


def test_a_symlink_into_git_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(VALUE)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "partner").symlink_to(tmp_path / ".git" / "config")
    assert file_refusal("keys/partner", tmp_path) is not None


@pytest.mark.parametrize("path", ["/run/secrets/kubernetes.io/serviceaccount/token",
                                  "/var/run/secrets/kubernetes.io/serviceaccount/token",
                                  "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"])
def test_service_account_tokens_are_refused_although_the_example_pattern_matches(tmp_path: Path, path: str) -> None:
    policy = Policy({"EXPSYNC_SECRET_REFS": "file:/run/secrets/*,file:/var/run/secrets/*"}, tmp_path)
    verdict = policy.verdict(parse_ref(f"file:{path}"))
    assert verdict is not None and verdict[0] == "E410", verdict


def test_partner_key_files_stay_allowed(tmp_path: Path) -> None:
    policy = Policy({"EXPSYNC_SECRET_REFS": "file:/run/secrets/*"}, tmp_path)
    assert policy.verdict(parse_ref("file:/run/secrets/partner-foo")) is None
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "gitlab.txt").write_text("k")
    assert file_refusal("keys/gitlab.txt", tmp_path) is None
