"""What the gateway's admin API does, written independently of expsync's code: seeding rows
the way it writes them, and reading them back the way the gateway's router does."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TEST_KEY_B64 = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="  # spec §2.3 test vector key
TEST_KEY = base64.b64decode(TEST_KEY_B64)


def encrypt(plaintext: str, key: bytes = TEST_KEY) -> dict[str, str]:
    iv = os.urandom(12)
    sealed = AESGCM(key).encrypt(iv, plaintext.encode(), None)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return {"iv": b64(iv), "data": b64(sealed[:-16]), "authTag": b64(sealed[-16:])}


def decrypt(enc: dict[str, str], key: bytes = TEST_KEY) -> str:
    d = base64.b64decode
    return AESGCM(key).decrypt(d(enc["iv"]), d(enc["data"]) + d(enc["authTag"]), None).decode()


def admin_create_experiment(conn: sa.Connection, public_model_id: str, name: str, *, status: str = "draft",
                            archived: bool = False) -> uuid.UUID:
    row = conn.execute(sa.text(
        "INSERT INTO model_experiment (public_model_id, name, status, is_archived, started_at) "
        "VALUES (:p, :n, :s, :a, CASE WHEN :s IN ('active','paused','completed') THEN now() END) RETURNING id"),
        {"p": public_model_id, "n": name, "s": status, "a": archived}).one()
    return row[0]


def admin_add_variant(conn: sa.Connection, experiment_id: uuid.UUID, label: str, weight: int) -> uuid.UUID:
    return conn.execute(sa.text(
        "INSERT INTO model_experiment_variant (experiment_id, label, weight) VALUES (:e, :l, :w) RETURNING id"),
        {"e": experiment_id, "l": label, "w": weight}).one()[0]


def admin_add_version(conn: sa.Connection, variant_id: uuid.UUID, upstream: dict, api_key: str, *,
                      effective_at: datetime | None = None) -> uuid.UUID:
    return conn.execute(sa.text(
        "INSERT INTO model_experiment_variant_version (variant_id, upstream, encrypted_api_key, effective_at) "
        "VALUES (:v, CAST(:u AS jsonb), CAST(:k AS jsonb), COALESCE(:t, now())) RETURNING id"),
        {"v": variant_id, "u": json.dumps(upstream), "k": json.dumps(encrypt(api_key)), "t": effective_at}).one()[0]


def dump_tables(conn: sa.Connection) -> dict[str, list]:
    """Every row of every table expsync or the gateway owns, for 'nothing changed' checks."""
    out = {}
    for t in ("model_experiment", "model_experiment_variant", "model_experiment_variant_version",
              "expsync_managed", "expsync_cache_outbox", "expsync_audit"):
        out[t] = [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1")).all()]
    return out


def gateway_routes(conn: sa.Connection, public_model_id: str) -> list[dict]:
    """The gateway's reader: the routing experiment for a public id, its variants in id order,
    each with its current version (latest effective_at <= now, ties by id DESC) decrypted."""
    exp = conn.execute(sa.text(
        "SELECT id, status FROM model_experiment WHERE public_model_id = :p AND status IN ('active','paused')"),
        {"p": public_model_id.lower()}).one_or_none()
    if exp is None:
        return []
    rows = conn.execute(sa.text(
        "SELECT v.id, v.label, v.weight, cur.upstream, cur.encrypted_api_key FROM model_experiment_variant v "
        "LEFT JOIN LATERAL (SELECT upstream, encrypted_api_key FROM model_experiment_variant_version x "
        "  WHERE x.variant_id = v.id AND x.effective_at <= now() ORDER BY x.effective_at DESC, x.id DESC LIMIT 1) cur "
        "ON true WHERE v.experiment_id = :e ORDER BY v.id"), {"e": exp[0]}).all()
    return [{"status": exp[1], "label": r[1], "weight": r[2], "upstream": r[3],
             "api_key": decrypt(r[4]) if r[4] else None} for r in rows]


# --- the gateway's Redis cache (spec §2.4), as its router reads it -----------------------

MEMBERSHIP = "ai-gateway.model-experiments:experimented-public-ids"
BY_PUBLIC_ID = "ai-gateway.model-experiments:by-public-id:"


def expected_membership(conn: sa.Connection) -> bytes:
    """The membership value recomputed from the rows: distinct routing public ids (archived
    included), sorted, compact JSON, non-ASCII as is."""
    ids = conn.execute(sa.text(
        "SELECT DISTINCT public_model_id FROM model_experiment WHERE status IN ('active','paused')")).scalars().all()
    return json.dumps(sorted(ids), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def dump_text(conn: sa.Connection) -> str:
    """Every cell of every table as text, for 'this value appears nowhere' scans."""
    return repr(dump_tables(conn)) + "\n" + json.dumps(
        {t: [[str(c) for c in row] for row in rows] for t, rows in dump_tables(conn).items()}, ensure_ascii=False)


#: pg_locks filter: advisory locks are per database, and other tests run in other databases
THIS_DB = "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
