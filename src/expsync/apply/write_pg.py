"""The statements of :mod:`expsync.apply.execute` as SQL text, for a bare psycopg connection
(:class:`~expsync.state.connection.PgConnection`): ``apply`` on Postgres, without importing
SQLAlchemy (its import and engine cost more than the writes themselves).

The same statements :mod:`expsync.apply.write_core` builds with SQLAlchemy Core for Postgres:
rows travel as ONE text parameter, a JSON array read with ``jsonb_to_recordset(...) AS w(col
TYPE, ...)`` (nested JSON values stay nested; a JSON null is SQL NULL), every constant is cast
to its column's type, and ``now()`` is the transaction's clock.
``tests/integration/test_apply_wire.py`` runs every kind of op through both writers and
requires equal rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from expsync.apply.execute import NOW, NOW_IF_NULL, Column, Constant, rows_json
from expsync.state.connection import PgConnection, write

#: Postgres type of each value kind
_TYPES: Final = {"uuid": "UUID", "text": "TEXT", "int": "INTEGER", "bool": "BOOLEAN", "json": "JSONB"}


def _source(name: str, columns: Sequence[Column]) -> str:
    """``jsonb_to_recordset(...) AS name(col TYPE, ...)`` reading parameter ``name``."""
    return (f"jsonb_to_recordset(CAST(%({name})s AS JSONB)) AS {name}("
            + ", ".join(f"{col} {_TYPES[kind]}" for col, kind in columns) + ")")


def _value(table: str, column: str, value: Any, name: str, params: dict[str, Any]) -> str:
    if value is NOW:
        return "now()"
    if value is NOW_IF_NULL:
        return f"coalesce({table}.{column}, now())"
    kind, v = value
    params[name] = v
    return f"CAST(%({name})s AS {_TYPES[kind]})"


class PgWriter:
    """:class:`~expsync.apply.execute.Writer` on a :class:`PgConnection` (inside its transaction)."""

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn

    def _run(self, sql: str, params: dict[str, Any]) -> int:
        return write(self.conn, [(sql, params)])[0].rowcount

    def insert(self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]],
               constants: Mapping[str, Constant] | None = None) -> None:
        params: dict[str, Any] = {"w": rows_json(columns, rows)}
        consts = dict(constants or {})
        names = [c for c, _ in columns] + list(consts)
        values = [f"w.{c}" for c, _ in columns] + [_value(table, c, v, f"k_{c}", params) for c, v in consts.items()]
        self._run(f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(values)} FROM {_source('w', columns)}",
                  params)

    def update_rows(self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> int:
        sets = ", ".join([f"{c} = w.{c}" for c, _ in columns[1:]] + ["updated_at = now()"])
        return self._run(f"UPDATE {table} SET {sets} FROM {_source('w', columns)} WHERE {table}.id = w.id",
                         {"w": rows_json(columns, rows)})

    def update_ids(self, table: str, ids: Sequence[Any], values: Mapping[str, Any], *,
                   status: str | None = None) -> int:
        params: dict[str, Any] = {"ids": json.dumps([str(i) for i in ids])}
        sets = ", ".join(f"{c} = {_value(table, c, v, f'v_{c}', params)}" for c, v in values.items())
        sql = f"UPDATE {table} SET {sets} WHERE {table}.id IN ({_elements('ids', 'uuid')})"
        if status is not None:
            params["status"] = status
            sql += f" AND {table}.status = CAST(%(status)s AS TEXT)"
        return self._run(sql, params)

    def delete(self, table: str, matches: Sequence[tuple[Sequence[Column], Sequence[Sequence[Any]]]]) -> int:
        params: dict[str, Any] = {}
        conditions = []
        for i, (columns, rows) in enumerate(matches):
            name = f"w{i}"
            if len(columns) == 1:
                (col, kind), = columns
                params[name] = json.dumps([None if r[0] is None else str(r[0]) for r in rows])
                conditions.append(f"{table}.{col} IN ({_elements(name, kind)})")
            else:
                params[name] = rows_json(columns, rows)
                conditions.append(f"({', '.join(f'{table}.{c}' for c, _ in columns)}) IN "
                                  f"(SELECT {', '.join(f'{name}.{c}' for c, _ in columns)} FROM {_source(name, columns)})")
        return self._run(f"DELETE FROM {table} WHERE {' OR '.join(conditions)}", params)

    def copy_versions(self, rows: Sequence[tuple[Any, Any]], actor: str | None) -> int:
        columns = [("base", "uuid"), ("upstream", "json")]
        return self._run(
            "INSERT INTO model_experiment_variant_version (variant_id, upstream, encrypted_api_key, created_by) "
            "SELECT src.variant_id, w.upstream, src.encrypted_api_key, CAST(%(b_actor)s AS TEXT) "
            f"FROM model_experiment_variant_version AS src JOIN {_source('w', columns)} ON src.id = w.base",
            {"w": rows_json(columns, rows), "b_actor": actor})


def _elements(name: str, kind: str) -> str:
    """A subquery yielding the elements of the JSON array parameter ``name`` as ``kind``."""
    return f"SELECT CAST(value AS {_TYPES[kind]}) FROM jsonb_array_elements_text(CAST(%({name})s AS JSONB))"
