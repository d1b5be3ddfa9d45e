"""Shared pieces of the apply acceptance tests: desired-state documents as an engineer writes
them (one YAML file per experiment, so removing an experiment is removing its file), the
environment a CI job gives expsync, and the real CLI in a subprocess where concurrency or a
kill needs a process of its own."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from expsync.state.tables import experiment as experiment_table
from expsync.state.tables import variant as variant_table
from expsync.state.tables import version as version_table
from tests.integration.gateway import TEST_KEY, TEST_KEY_B64, encrypt

REPO = Path(__file__).resolve().parents[2]
BASE = "https://api.partner.example/v1"

#: variables the developer's shell might set that would change what a test sees
_CLEARED = ("EXPSYNC_ACTOR", "GITHUB_SHA", "GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY",
            "EXPSYNC_REDIS_URL", "EXPSYNC_REDIS_KEY_PREFIX", "EXPSYNC_DEBUG", "NO_COLOR")


def url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def cli_env(engine: sa.Engine, secrets: Mapping[str, str] | None = None, **extra: str | None) -> dict[str, str | None]:
    """What run_cli / a subprocess gets: the database, the BYOK key, secrets; nothing inherited
    that would change behaviour (``None`` unsets)."""
    env: dict[str, str | None] = {k: None for k in _CLEARED}
    env |= {"EXPSYNC_DATABASE_URL": url_of(engine), "BYOK_ENCRYPTION_KEY": TEST_KEY_B64}
    env |= dict(secrets or {})
    env |= extra
    return env


def upstream(internal_id: str, base_url: str = BASE, **fields: Any) -> dict[str, Any]:
    return {"internal_id": internal_id, "base_url": base_url, **fields}


def variant(label: str, up: dict[str, Any] | str, api_key: str, *, weight: int = 1, key: str | None = None,
            id: object = None) -> dict[str, Any]:
    v: dict[str, Any] = {"label": label}
    if key is not None:
        v["key"] = key
    if id is not None:
        v["id"] = str(id)
    v["weight"] = weight
    v["upstream"] = upstream(up) if isinstance(up, str) else up
    v["api_key"] = api_key
    return v


def experiment(key: str, public_model_id: str, status: str, variants: list[dict[str, Any]], *, name: str | None = None,
               description: str | None = None, archived: bool | None = None, id: object = None) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if id is not None:
        doc["id"] = str(id)
    doc |= {"key": key, "public_model_id": public_model_id, "name": name or f"Experiment {key}"}
    if description is not None:
        doc["description"] = description
    doc["status"] = status
    if archived is not None:
        doc["archived"] = archived
    doc["variants"] = variants
    return doc


class Repo:
    """The ``experiments/`` directory of a git checkout: one file per experiment key."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "experiments"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.docs: dict[str, dict[str, Any]] = {}

    def put(self, *docs: dict[str, Any]) -> Repo:
        for doc in docs:
            self.docs[doc["key"]] = copy.deepcopy(doc)
            (self.dir / f"{doc['key']}.yaml").write_text(
                yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return self

    def edit(self, key: str) -> dict[str, Any]:
        """A copy of the document to change and ``put`` back."""
        return copy.deepcopy(self.docs[key])

    def remove(self, key: str) -> None:
        del self.docs[key]
        (self.dir / f"{key}.yaml").unlink()

    def copy_file(self, path: Path) -> None:
        (self.dir / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            self.docs[doc["key"]] = doc

    @property
    def path(self) -> str:
        return str(self.dir)


def generated_corpus() -> list[dict[str, Any]]:
    """Drafts and actives with 1-4 variants and every upstream field the gateway knows."""
    return [
        experiment("gen-draft-single", "partner/gen-draft-single", "draft",
                   [variant("only", "m-single", "env:KEY_DRAFT")]),
        experiment("gen-draft-three", "partner/gen-draft-three", "draft", [
            variant("a", upstream("m-a", extra_body={"temperature": 0.7, "stop": ["\n\n", "END"],
                                                     "meta": {"none": None, "mixed": [1, 2.5, True, "x"]}},
                                  remove_from_body=["reasoning_effort", "top_k"]), "env:KEY_DRAFT", weight=5),
            variant("b", upstream("m-b", add_cache_breakpoints=True), "env:KEY_DRAFT", weight=3),
            variant("c", upstream("m-c", base_url="http://10.0.0.7:8080/v1"), "env:KEY_OTHER", weight=2),
        ], description="three variants, still a draft"),
        experiment("gen-draft-archived", "partner/gen-draft-archived", "draft",
                   [variant("x", "m-x", "env:KEY_DRAFT"), variant("y", "m-y", "env:KEY_DRAFT")], archived=True),
        experiment("gen-active-two", "partner/gen-active-two", "active", [
            variant("control", upstream("m-control", opencode_settings={"ai_sdk_provider": "openai-compatible"}),
                    "env:KEY_TWO"),
            variant("candidate", upstream("m-candidate", opencode_settings={"ai_sdk_provider": "anthropic"},
                                          openclaw_settings={"api_adapter": "anthropic-messages"}), "env:KEY_TWO"),
        ]),
        experiment("gen-active-three", "partner/gen-active-three", "active", [
            variant("v1", upstream("m-v1", inject_reasoning_into_content=True, add_cache_breakpoints=False),
                    "env:KEY_THREE", weight=1),
            variant("v2", upstream("m-v2", openclaw_settings={"api_adapter": "openai-completions"},
                                   extra_body={"reasoning": {"effort": "high"}}), "env:KEY_THREE", weight=2),
            variant("v3", upstream("m-v3", remove_from_body=[]), "env:KEY_OTHER", weight=3),
        ], description="weights 1:2:3"),
        experiment("gen-active-unicode", "partner/modèle", "active", [
            variant("über", upstream("m-über", extra_body={"prompt_prefix": "Réponds en français ✓"}), "env:KEY_UNI",
                    key="uber"),
            variant("b", "m-b", "env:KEY_UNI", weight=2),
            variant("c", "m-c", "env:KEY_UNI", weight=3),
            variant("d", upstream("m-d", opencode_settings={}), "env:KEY_UNI", weight=4),
        ], name="Modèle — ünïcode", description="line one\nline two: ünïcode"),
    ]


#: distinct values per reference, so a mix-up between variants shows
CORPUS_SECRETS: Mapping[str, str] = {
    "KEY_DRAFT": "sk-draft-0001", "KEY_OTHER": "sk-other-0002", "KEY_TWO": "sk-two-0003",
    "KEY_THREE": "sk-three-0004", "KEY_UNI": "sk-ünï-0005",
    "FOO_PARTNER_KEY": "sk-foo-0006", "BAR_PARTNER_KEY": "sk-bar-0007", "BAZ_PARTNER_KEY": "sk-baz-0008",
}


def seed_history(engine: sa.Engine, path: Path, secrets: Mapping[str, str]) -> None:
    """The completed + archived rows an adopted file pins by id, as the admin UI wrote them
    (what scripts/demo_seed.py does for the demo)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    with engine.begin() as conn:
        eid = uuid.UUID(doc["id"])
        conn.execute(sa.insert(experiment_table).values(
            id=eid, public_model_id=doc["public_model_id"], name=doc["name"], status="completed",
            is_archived=True, created_by_user_id="admin-ui"))
        for v in doc["variants"]:
            vid = uuid.UUID(v["id"])
            conn.execute(sa.insert(variant_table).values(id=vid, experiment_id=eid, label=v["label"], weight=v["weight"]))
            conn.execute(sa.insert(version_table).values(
                variant_id=vid, upstream=v["upstream"], created_by="admin-ui",
                encrypted_api_key=encrypt(secrets[v["api_key"].removeprefix("env:")], TEST_KEY)))


def subprocess_env(env: Mapping[str, str | None]) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in env}
    out |= {k: v for k, v in env.items() if v is not None}
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), out.get("PYTHONPATH")) if p)
    return out


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(args: Iterable[str], env: Mapping[str, str | None], cwd: Path) -> subprocess.Popen[str]:
    """The real CLI in its own process (``python -m expsync.cli``), stdin closed. SIGINT is a
    Ctrl-C there (KeyboardInterrupt) even when this process was started ignoring it, as a
    background job of a non-interactive shell is."""
    return subprocess.Popen([sys.executable, "-m", "expsync.cli", *args], env=subprocess_env(env), cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
