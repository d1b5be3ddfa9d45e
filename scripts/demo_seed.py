"""Seed the demo database with history the gateway's admin UI wrote before expsync existed:
the completed + archived experiment that experiments/baz-2025-q3.yaml adopts by `id:` pins.

Idempotent (does nothing when the row exists). Used only by scripts/demo.sh.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import sqlalchemy as sa
import yaml

from expsync.crypto import encrypt_api_key, load_key
from expsync.state.db import engine_from_environ
from expsync.state.tables import experiment, variant, version


def main() -> None:
    doc = yaml.safe_load(Path("experiments/baz-2025-q3.yaml").read_text())
    key = load_key(os.environ["BYOK_ENCRYPTION_KEY"])
    engine = engine_from_environ(os.environ)
    with engine.begin() as conn:
        eid = uuid.UUID(doc["id"])
        if conn.execute(sa.select(experiment.c.id).where(experiment.c.id == eid)).first():
            return
        conn.execute(sa.insert(experiment).values(
            id=eid, public_model_id=doc["public_model_id"], name=doc["name"], status="completed", is_archived=True,
            created_by_user_id="admin-ui"))
        for v in doc["variants"]:
            vid = uuid.UUID(v["id"])
            conn.execute(sa.insert(variant).values(id=vid, experiment_id=eid, label=v["label"], weight=v["weight"]))
            secret = os.environ[v["api_key"].removeprefix("env:")]
            conn.execute(sa.insert(version).values(variant_id=vid, upstream=v["upstream"],
                                                   encrypted_api_key=encrypt_api_key(secret, key), created_by="admin-ui"))
    print("seeded history: completed + archived experiment", doc["key"], "(as the admin UI wrote it)")


if __name__ == "__main__":
    main()
