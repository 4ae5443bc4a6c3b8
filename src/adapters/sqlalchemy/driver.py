"""The hot path's statements, run on the driver's own connection.

SQLAlchemy builds and compiles these statements (once per dialect and set of columns); psycopg or
aiosqlite then executes them directly. That skips SQLAlchemy's per-execution work (cache key,
execution context, result wrapping, a greenlet per call): measured on PostgreSQL, assign-work's
transaction took 790 µs of CPU through SQLAlchemy against 315 µs on psycopg alone. On SQLite it
also saves three of the four trips to aiosqlite's thread that a SQLAlchemy cursor takes.

Bind values and result columns go through the same type processors SQLAlchemy would apply, and
driver errors are wrapped into SQLAlchemy's exceptions, so callers see no difference.

On PostgreSQL the statements are compiled with PostgreSQL's own ``$1`` placeholders and run on psycopg's raw
cursor, which sends them as they are. psycopg's usual cursor rewrites ``%(name)s`` into ``$n`` on every
execution and caches the result only for statements under 4,096 characters and 50 parameters: the
assignment's one statement is past that, and its rewrite cost ~0.3 ms of CPU per assignment (cProfile).
"""

from __future__ import annotations

import copy
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncRawCursor
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable


@dataclass
class _Prepared:
    sql: str
    positions: tuple[str, ...] | None  # values in this order (SQLite's ?, PostgreSQL's $n); None: by name
    literals: dict[str, Any]  # values written into the statement itself (e.g. 'sent' in a CASE)
    processors: dict[str, Callable[[Any], Any]]
    # For SELECTs: the row type and each column's result processor (known after the first result).
    row_type: Any = None
    column_processors: list[Callable[[Any], Any] | None] = field(default_factory=list)


# Keyed by the statement object itself (not its id, which a collected statement's successor could
# reuse). Callers pass module-level constants, so this stays small.
_prepared: dict[tuple[Executable, str, tuple[str, ...]], _Prepared] = {}


_dollar_dialects: dict[Dialect, Dialect] = {}


def _compiling_dialect(dialect: Dialect) -> Dialect:
    """PostgreSQL's: the same dialect writing ``$n`` placeholders (for the raw cursor); SQLite's as it is."""
    if dialect.name != "postgresql":
        return dialect
    found = _dollar_dialects.get(dialect)
    if found is None:
        found = copy.copy(dialect)
        found.paramstyle, found.positional = "numeric_dollar", True
        _dollar_dialects[dialect] = found
    return found


def _prepare(statement: Executable, connection: AsyncConnection, keys: tuple[str, ...]) -> _Prepared:
    dialect = connection.dialect
    cache_key = (statement, dialect.name, keys)
    found = _prepared.get(cache_key)
    if found is None:
        compiled = statement.compile(dialect=_compiling_dialect(dialect), column_keys=list(keys))
        processors = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        found = _Prepared(
            sql=compiled.string,
            positions=tuple(compiled.positiontup) if compiled.positiontup else None,
            literals={name: bind.value for name, bind in compiled.binds.items() if not bind.required},
            processors=processors,
        )
        _prepared[cache_key] = found
    return found


def _arguments(prepared: _Prepared, values: Mapping[str, Any]) -> Any:
    merged = {**prepared.literals, **values}
    for name, process in prepared.processors.items():
        merged[name] = process(merged[name])
    if prepared.positions is None:
        return merged
    return tuple(merged[name] for name in prepared.positions)


async def _driver(connection: AsyncConnection) -> Any:
    sync = connection.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        # Checked out and valid: read it directly. get_raw_connection() costs a greenlet switch every call.
        return sync.connection.driver_connection
    return (await connection.get_raw_connection()).driver_connection


def _wrapped(error: Exception, prepared: _Prepared, connection: AsyncConnection) -> Exception:
    dbapi = connection.dialect.loaded_dbapi
    if isinstance(error, dbapi.Error):
        return DBAPIError.instance(prepared.sql, None, error, dbapi.Error)
    return error


async def _rows(
    connection: AsyncConnection, prepared: _Prepared, values: Mapping[str, Any], type_codes: bool = False
) -> tuple[list[Any], list[Any] | None]:
    """Execute and fetch every row; with ``type_codes``, also the columns' type codes (psycopg gives them, SQLite
    has none). Only the first execution needs them: psycopg builds its description anew on every call (measured
    3 % of assign-work's CPU for the parties' 30-odd columns)."""
    arguments = _arguments(prepared, values)
    driver = await _driver(connection)
    try:
        if connection.dialect.name == "sqlite":
            return await driver.execute_fetchall(prepared.sql, arguments), None  # one trip to its thread
        async with AsyncRawCursor(driver) as cursor:
            await cursor.execute(prepared.sql, arguments)
            rows = await cursor.fetchall()
            return rows, [column.type_code for column in cursor.description] if type_codes else None
    except Exception as error:
        raise _wrapped(error, prepared, connection) from error


async def insert_returning_id(connection: AsyncConnection, statement: Executable, values: Mapping[str, Any]) -> int:
    """Run ``INSERT ... RETURNING id`` with these column values; returns the new id."""
    (row,), _ = await _rows(connection, _prepare(statement, connection, tuple(values)), values)
    return row[0]


async def fetch_all(connection: AsyncConnection, statement: Any, values: Mapping[str, Any]) -> list[Any]:
    """Run a SELECT; rows are named tuples with the statement's column names, values as SQLAlchemy gives them."""
    prepared = _prepare(statement, connection, ())
    rows, type_codes = await _rows(connection, prepared, values, type_codes=prepared.row_type is None)
    if prepared.row_type is None:
        dialect, columns = connection.dialect, list(statement.selected_columns)
        prepared.column_processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, type_codes[i] if type_codes else None)
            for i, column in enumerate(columns)
        ]
        prepared.row_type = namedtuple("Row", [column.key for column in columns])
    make, processors = prepared.row_type._make, prepared.column_processors
    return [make(p(v) if p else v for p, v in zip(processors, row, strict=True)) for row in rows]


async def execute_many(
    connection: AsyncConnection,
    statement: Executable,
    rows: Sequence[Mapping[str, Any]],
    at_once: Executable | None = None,
) -> None:
    """Run a statement that returns nothing once per row (psycopg pipelines them, SQLite runs them in one call).

    On PostgreSQL, ``at_once`` is the same statement over arrays (each bind takes every row's value of that name as
    one array, which the statement unnests): one execution for the whole batch. A row in psycopg's pipeline cost
    about as much CPU as a statement of its own; the outcome recorder wrote three rows per order that way."""
    if not rows:
        return
    at_once = at_once if connection.dialect.name == "postgresql" else None
    if at_once is not None:
        prepared = _prepare(at_once, connection, ())
        arguments: Any = _arguments(prepared, {key: [row[key] for row in rows] for key in rows[0]})
    else:
        prepared = _prepare(statement, connection, ())
        arguments = [_arguments(prepared, row) for row in rows]
    driver = await _driver(connection)
    try:
        if connection.dialect.name == "sqlite":
            await driver.executemany(prepared.sql, arguments)
        else:
            async with AsyncRawCursor(driver) as cursor:
                run = cursor.execute if at_once is not None else cursor.executemany
                await run(prepared.sql, arguments)
    except Exception as error:
        raise _wrapped(error, prepared, connection) from error
