"""Idempotency keys over SQLAlchemy Core: INSERT ... ON CONFLICT DO NOTHING claims a key in one statement."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sqlalchemy.tables import idempotency_keys as keys
from application.ports import IdempotencyRepository, StoredAnswer


class SqlAlchemyIdempotencyRepository(IdempotencyRepository):
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def claim(self, user_id: int, key: str, fingerprint: str, now: datetime) -> StoredAnswer | None:
        dialect = postgresql if self._c.dialect.name == "postgresql" else sqlite
        # On PostgreSQL, a concurrent transaction's uncommitted claim of the same key makes this INSERT
        # wait for it; then it conflicts and the SELECT below sees that transaction's answer.
        claimed = await self._c.execute(
            dialect.insert(keys)
            .values(user_id=user_id, key=key, fingerprint=fingerprint, created_at=now, final=False)
            .on_conflict_do_nothing(index_elements=[keys.c.user_id, keys.c.key])
            .returning(keys.c.user_id)
        )
        if claimed.first() is not None:
            return None
        row = (await self._c.execute(select(keys).where(self._this(user_id, key)))).one()
        return StoredAnswer(row.fingerprint, row.created_at, row.status_code, row.body, row.final)

    async def save_answer(self, user_id: int, key: str, status_code: int, body: str, final: bool) -> None:
        await self._c.execute(
            update(keys).where(self._this(user_id, key)).values(status_code=status_code, body=body, final=final)
        )

    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        oldest = select(keys.c.user_id, keys.c.key).where(keys.c.created_at < cutoff).limit(limit)
        if self._c.dialect.name == "postgresql":
            doomed = oldest.cte()
            statement = delete(keys).where(and_(keys.c.user_id == doomed.c.user_id, keys.c.key == doomed.c.key))
        else:
            statement = delete(keys).where(keys.c.created_at < cutoff)  # SQLite: one writer, no batching needed
        return (await self._c.execute(statement)).rowcount

    @staticmethod
    def _this(user_id: int, key: str):
        return and_(keys.c.user_id == user_id, keys.c.key == key)
