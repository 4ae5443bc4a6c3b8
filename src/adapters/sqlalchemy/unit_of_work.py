"""The unit of work: one connection, one transaction, shared by all repositories."""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Self

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.geo import nearby_for
from adapters.sqlalchemy.audit import SqlAlchemyDeliveryAttemptRepository
from adapters.sqlalchemy.held import HeldConnections
from adapters.sqlalchemy.idempotency import SqlAlchemyIdempotencyRepository
from adapters.sqlalchemy.operator_queries import SqlAlchemyOperatorQueries
from adapters.sqlalchemy.repositories import (
    SqlAlchemyDeviceTokenRepository,
    SqlAlchemyNotificationRepository,
    SqlAlchemyProfileRepository,
    SqlAlchemyWorkOrderRepository,
)
from application.errors import SchemaNotMigrated, StorageUnavailable
from application.ports import UnitOfWork

# What "the database is not there" looks like from the driver and the pool.
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError, OSError, TimeoutError)


# PostgreSQL's undefined_table / undefined_column; SQLite says it in words.
_SCHEMA_SQLSTATES = ("42P01", "42703")
_SQLITE_SCHEMA_MESSAGES = ("no such table", "no such column")


def _schema_missing(error: DBAPIError) -> bool:
    if getattr(error.orig, "sqlstate", None) in _SCHEMA_SQLSTATES:
        return True
    return str(error.orig).startswith(_SQLITE_SCHEMA_MESSAGES)


class SqlAlchemyUnitOfWork(UnitOfWork):
    """Rolls back on exit unless committed. Connection-level failures become ``StorageUnavailable``.

    ``single_write``: on PostgreSQL the connection runs in autocommit, so a use case whose only change is one
    statement pays no BEGIN and COMMIT round trips (see ``UnitOfWorkFactory``). SQLite keeps its transaction:
    its BEGIN IMMEDIATE is what serialises writers, and costs no round trip.
    """

    def __init__(self, engine: AsyncEngine, single_write: bool = False, held: HeldConnections | None = None) -> None:
        self._engine = engine
        self._single_write = single_write and engine.dialect.name == "postgresql"
        self._held = held if self._single_write else None
        self._connection: AsyncConnection | None = None
        self._connection_is_held = False

    async def __aenter__(self) -> Self:
        try:
            self._connection = await self._connect()
        except UNAVAILABLE as error:
            raise StorageUnavailable(f"database unavailable: {type(error).__name__}") from error
        try:
            if self._connection_is_held:
                pass  # in autocommit already
            elif self._single_write:
                await self._connection.execution_options(isolation_level="AUTOCOMMIT")
            else:
                # Begin now, not at the first statement: some writes go to the driver directly (driver.py)
                # and must be inside the transaction (SQLite's BEGIN IMMEDIATE comes from this begin).
                await self._connection.begin()
            self.profiles = SqlAlchemyProfileRepository(self._connection)
            self.devices = SqlAlchemyDeviceTokenRepository(self._connection)
            self.work_orders = SqlAlchemyWorkOrderRepository(self._connection)
            self.notifications = SqlAlchemyNotificationRepository(self._connection)
            self.attempts = SqlAlchemyDeliveryAttemptRepository(self._connection)
            self.operator = SqlAlchemyOperatorQueries(self._connection)
            self.idempotency = SqlAlchemyIdempotencyRepository(self._connection)
            self.nearby = nearby_for(self._connection)
        except BaseException as error:
            await self.__aexit__(type(error), error, error.__traceback__)  # releases the connection
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._connection_is_held:
            assert self._held is not None
            await self._held.put_back(connection)
        else:
            try:
                await connection.rollback()
                await connection.close()
            except (*UNAVAILABLE, DBAPIError):
                # The connection is broken: drop it from the pool rather than hand it to the next request.
                with contextlib.suppress(Exception):
                    await connection.invalidate()
        if isinstance(exc, DBAPIError) and _schema_missing(exc):
            raise SchemaNotMigrated("the database schema is missing or out of date: run `workcast migrate`") from exc
        if isinstance(exc, UNAVAILABLE) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
            raise StorageUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    async def _connect(self) -> AsyncConnection:
        """A held autocommit connection when this unit of work may have one (``held.py``), else one from the pool."""
        self._connection_is_held = False
        if self._held is not None:
            connection = self._held.take_idle()
            if connection is None and self._held.may_hold_more():
                connection = await self._held.hold_new()
            if connection is not None:
                self._connection_is_held = True
                return connection
        return await self._engine.connect()

    async def commit(self) -> None:
        assert self._connection is not None, "commit outside 'async with'"
        if self._connection_is_held:
            return  # autocommit: each statement was committed as it ran
        try:
            await self._connection.commit()
        except UNAVAILABLE as error:
            raise StorageUnavailable(f"database unavailable: {type(error).__name__}") from error

    async def rollback(self) -> None:
        if self._connection is not None:
            await self._connection.rollback()
