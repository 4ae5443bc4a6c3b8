"""PostgreSQL connections kept out of the pool in autocommit, for units of work that write one statement.

A unit of work that takes a connection from SQLAlchemy's pool, switches it to autocommit and gives it back pays
five greenlet switches and the switch back on return: ~100 µs of CPU here, 6 % of an assign-work request
(measured with ``bench.ab``). Connections held here were taken from the same pool once and stay in autocommit, so
taking one is a list pop and the database sees no more connections than the pool allows.

At most ``size`` are held. When all are busy the unit of work takes an ordinary connection from the pool as before,
so nobody waits here and no queue is written by hand; a connection that failed is dropped (invalidated), and a new
one is held on a later use.
"""

from __future__ import annotations

import contextlib

from psycopg.pq import TransactionStatus
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class HeldConnections:
    def __init__(self, engine: AsyncEngine, size: int) -> None:
        self._engine = engine
        self._size = size if engine.dialect.name == "postgresql" else 0
        self._idle: list[AsyncConnection] = []
        self._held = 0  # idle or in use
        self._closed = False

    def take_idle(self) -> AsyncConnection | None:
        """An idle held connection, if there is one."""
        return self._idle.pop() if self._idle else None

    def may_hold_more(self) -> bool:
        return not self._closed and self._held < self._size

    async def hold_new(self) -> AsyncConnection:
        """A connection from the pool, in autocommit, counted as held (give it back with ``put_back``)."""
        self._held += 1
        try:
            connection = await self._engine.connect()
        except BaseException:
            self._held -= 1
            raise
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
        except BaseException:
            self._held -= 1
            with contextlib.suppress(Exception):
                await connection.invalidate()
            raise
        return connection

    async def put_back(self, connection: AsyncConnection) -> None:
        """Idle again, if it is: a statement cut short (a cancelled request) or a broken connection is dropped."""
        if self._closed or connection.closed or connection.invalidated or not _at_rest(connection):
            await self.drop(connection)
            return
        self._idle.append(connection)

    async def drop(self, connection: AsyncConnection) -> None:
        """Closed for good (the pool opens another when asked)."""
        self._held -= 1
        with contextlib.suppress(Exception):
            await connection.invalidate()

    async def close(self) -> None:
        """Give every idle connection back to the pool (before the engine is disposed)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._held -= 1
            with contextlib.suppress(Exception):
                await connection.close()


def _at_rest(connection: AsyncConnection) -> bool:
    """psycopg's own view: connected, no statement running, no transaction open."""
    driver = connection.sync_connection.connection.driver_connection
    return not driver.closed and driver.info.transaction_status == TransactionStatus.IDLE
