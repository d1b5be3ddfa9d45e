"""The statements of :mod:`expsync.apply.execute` built with SQLAlchemy Core, for a SQLAlchemy
connection: the embedded SQLite default, and Postgres reached through the engine (a URL only
SQLAlchemy reads). :mod:`expsync.apply.write_pg` writes the same statements as SQL text for a
bare psycopg connection; ``tests/integration/test_apply_wire.py`` requires both to leave
equal rows.

Rows travel as ONE bound parameter whatever their number (:func:`_rows`): a JSON array read
with ``jsonb_to_recordset`` on Postgres, ``json_each`` on SQLite, so the statement text does
not depend on the number of rows either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from expsync.apply.execute import NOW, NOW_IF_NULL, Column, Constant, rows_json
from expsync.state.tables import METADATA_COLUMN, experiment, experiment_with_metadata, managed, utcnow, variant, version

#: the value kinds a row source carries, with their Postgres column types
_PG_TYPES: Final[Mapping[str, sa.types.TypeEngine[Any]]] = {
    "uuid": sa.Uuid(), "text": sa.Text(), "int": sa.Integer(), "bool": sa.Boolean(), "json": JSONB(),
}
_TABLES: Final = {t.name: t for t in (experiment, variant, version, managed)}


def _table(name: str, columns: Sequence[str]) -> sa.Table:
    return experiment_with_metadata if name == experiment.name and METADATA_COLUMN in columns else _TABLES[name]


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _rows(conn: Connection, name: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> tuple[Any, dict[str, Any]]:
    """``rows`` as a row source bound as ONE text parameter (a JSON array), whatever their
    number: returns the source and one SQL expression per column name.

    Postgres: ``jsonb_to_recordset(CAST(:name_rows AS JSONB)) AS name(col1 UUID, col2 JSONB, ...)``
    (JSON values stay nested: no per-value encoding; a JSON null is SQL NULL). SQLite:
    ``json_each(:name_rows)``, each value read with ``json_extract`` in the form SQLAlchemy
    itself stores it (a Uuid as 32 hex digits, JSON as its text, a boolean as 0/1).

    One string, not one array per column: psycopg dumps a list parameter element by element
    in Python (and escapes every quote of a JSON text inside an array literal)."""
    if conn.dialect.name == "postgresql":
        param = sa.cast(sa.bindparam(f"{name}_rows", rows_json(columns, rows), type_=sa.Text()), JSONB)
        src = sa.func.jsonb_to_recordset(param).table_valued(
            *[sa.column(col, _PG_TYPES[kind]) for col, kind in columns]).render_derived(name, with_types=True)
        return src, {col: src.c[col] for col, _ in columns}
    encode: Mapping[str, Callable[[Any], Any]] = {
        "uuid": lambda v: None if v is None else v.hex, "json": _json_text, "bool": lambda v: None if v is None else int(v),
        "text": lambda v: v, "int": lambda v: v,
    }
    data = json.dumps([[encode[kind](r[i]) for i, (_, kind) in enumerate(columns)] for r in rows])
    src = sa.func.json_each(sa.bindparam(f"{name}_rows", data, type_=sa.Text())).table_valued("value").alias(name)
    return src, {col: sa.func.json_extract(src.c.value, f"$[{i}]") for i, (col, _) in enumerate(columns)}


def _value(table: sa.Table, column: str, value: Any, name: str) -> Any:
    if value is NOW:
        return utcnow()
    if value is NOW_IF_NULL:
        return sa.func.coalesce(table.c[column], utcnow())
    _, v = value
    return sa.bindparam(name, v, type_=table.c[column].type)


class CoreWriter:
    """:class:`~expsync.apply.execute.Writer` on a SQLAlchemy connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert(self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]],
               constants: Mapping[str, Constant] | None = None) -> None:
        t = _table(table, [c for c, _ in columns])
        src, cols = _rows(self.conn, "w", columns, rows)
        consts = dict(constants or {})
        names = [c for c, _ in columns] + list(consts)
        values = [cols[c] for c, _ in columns] + [_value(t, c, v, f"k_{c}") for c, v in consts.items()]
        self.conn.execute(sa.insert(t).from_select(names, sa.select(*values).select_from(src)))

    def update_rows(self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> int:
        t = _table(table, [c for c, _ in columns])
        src, cols = _rows(self.conn, "w", columns, rows)
        stmt = sa.update(t).where(t.c.id == cols["id"]).values(
            {c: cols[c] for c, _ in columns[1:]} | {"updated_at": utcnow()})
        # UPDATE ... FROM: Postgres and SQLite (3.33+) alike
        return int(self.conn.execute(stmt).rowcount)

    def update_ids(self, table: str, ids: Sequence[Any], values: Mapping[str, Any], *,
                   status: str | None = None) -> int:
        t = _table(table, list(values))
        where: list[Any] = [t.c.id.in_(self._in(ids, "uuid", "ids"))]
        if status is not None:
            where.append(t.c.status == status)
        stmt = sa.update(t).where(*where).values({c: _value(t, c, v, f"v_{c}") for c, v in values.items()})
        return int(self.conn.execute(stmt).rowcount)

    def delete(self, table: str, matches: Sequence[tuple[Sequence[Column], Sequence[Sequence[Any]]]]) -> int:
        t = _table(table, [])
        conditions = []
        for i, (columns, rows) in enumerate(matches):
            if len(columns) == 1:
                (col, kind), = columns
                conditions.append(t.c[col].in_(self._in([r[0] for r in rows], kind, f"w{i}")))
            else:
                src, cols = _rows(self.conn, f"w{i}", columns, rows)
                conditions.append(sa.tuple_(*[t.c[c] for c, _ in columns]).in_(
                    sa.select(*[cols[c] for c, _ in columns]).select_from(src)))
        return int(self.conn.execute(sa.delete(t).where(sa.or_(*conditions))).rowcount)

    def copy_versions(self, rows: Sequence[tuple[Any, Any]], actor: str | None) -> int:
        wanted, cols = _rows(self.conn, "w", [("base", "uuid"), ("upstream", "json")], rows)
        src = version.alias("src")
        stmt = sa.insert(version).from_select(
            ["variant_id", "upstream", "encrypted_api_key", "created_by"],
            sa.select(src.c.variant_id, cols["upstream"], src.c.encrypted_api_key,
                      sa.bindparam("b_actor", actor, type_=sa.Text()))
            .join_from(src, wanted, src.c.id == cols["base"]),
        ).returning(version.c.id)  # counted from the rows: INSERT ... SELECT reports no rowcount on psycopg
        return len(self.conn.execute(stmt).all())

    def _in(self, values: Sequence[Any], kind: str, name: str) -> Any:
        """A subquery yielding ``values`` (one parameter whatever their number), for ``col IN (...)``;
        ``name`` must be unique within the statement."""
        src, cols = _rows(self.conn, name, [("v", kind)], [(v,) for v in values])
        return sa.select(cols["v"]).select_from(src).scalar_subquery()
