"""A database that is not there is a clear, quick StorageUnavailable, not a hang."""

from __future__ import annotations

import time

import pytest

from adapters.sqlalchemy.engine import DatabaseSettings, create_engine
from adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from application.errors import StorageUnavailable
from tests.fixtures.servers import free_port


async def test_an_unreachable_postgres_fails_fast_with_storage_unavailable():
    engine = create_engine(
        DatabaseSettings(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none", connect_timeout=2)
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        async with SqlAlchemyUnitOfWork(engine) as uow:
            await uow.profiles.get(1)
    assert time.monotonic() - started < 5
    await engine.dispose()


async def test_a_sqlite_file_locked_by_another_writer_is_storage_unavailable_after_the_timeout(sqlite_engine):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    impatient = create_engine(DatabaseSettings(url, connect_timeout=0.3))
    try:
        async with SqlAlchemyUnitOfWork(sqlite_engine) as holder:
            await holder.profiles.get(1)  # BEGIN IMMEDIATE: holds the write lock
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                async with SqlAlchemyUnitOfWork(impatient) as uow:
                    await uow.profiles.get(1)
            assert time.monotonic() - started < 3
    finally:
        await impatient.dispose()
