"""Deleting in bounded batches: what the retention sweeps share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection


async def delete_oldest(connection: AsyncConnection, table: Table, where: Any, oldest_first: Any, limit: int) -> int:
    """Delete at most ``limit`` rows matching ``where``, in ``oldest_first`` order: a big backlog never holds a
    long lock or makes a huge transaction. Returns how many were deleted."""
    doomed = select(table.c.id).where(where).order_by(oldest_first).limit(limit).scalar_subquery()
    return (await connection.execute(delete(table).where(table.c.id.in_(doomed)))).rowcount
