"""Connections held in autocommit for one-statement units of work (adapters/sqlalchemy/held.py), on PostgreSQL."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from adapters.sqlalchemy.engine import DatabaseSettings, create_engine
from adapters.sqlalchemy.held import HeldConnections
from adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from application.errors import StorageUnavailable
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.integration.test_repository_contract import add_people


@pytest.fixture
async def engine(postgres_url):
    engine = create_engine(DatabaseSettings(postgres_url, pool_size=3, max_overflow=0))
    yield engine
    await engine.dispose()


async def backend_pid(uow: SqlAlchemyUnitOfWork) -> int:
    return (await uow._connection.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()


async def in_autocommit(uow: SqlAlchemyUnitOfWork) -> bool:
    return (await uow._connection.get_raw_connection()).driver_connection.autocommit


async def test_one_statement_units_of_work_share_a_held_connection_in_autocommit(engine):
    held = HeldConnections(engine, size=1)
    async with SqlAlchemyUnitOfWork(engine, single_write=True, held=held) as uow:
        first = await backend_pid(uow)
        assert await in_autocommit(uow)
    async with SqlAlchemyUnitOfWork(engine, single_write=True, held=held) as uow:
        assert await backend_pid(uow) == first
    async with SqlAlchemyUnitOfWork(engine, held=held) as uow:  # a transaction: from the pool, not autocommit
        assert await backend_pid(uow) != first
        assert not await in_autocommit(uow)
    await held.close()
    assert engine.pool.checkedout() == 0


async def test_when_every_held_connection_is_busy_the_pool_serves(engine):
    held = HeldConnections(engine, size=1)
    async with (
        SqlAlchemyUnitOfWork(engine, single_write=True, held=held) as outer,
        SqlAlchemyUnitOfWork(engine, single_write=True, held=held) as inner,
    ):
        assert await backend_pid(inner) != await backend_pid(outer)
        assert await in_autocommit(inner)
    assert engine.pool.checkedout() == 1  # the held one; the other went back to the pool
    await held.close()


async def test_a_held_connection_killed_by_the_server_fails_once_then_is_replaced(engine, postgres_url):
    seeker, _ = await add_people(lambda: SqlAlchemyUnitOfWork(engine))
    held = HeldConnections(engine, size=1)
    async with SqlAlchemyUnitOfWork(engine, single_write=True, held=held) as uow:
        victim = await backend_pid(uow)
    admin_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", [victim])
    with pytest.raises(StorageUnavailable):
        async with SqlAlchemyUnitOfWork(engine, single_write=True, held=held) as uow:
            await uow.profiles.get_many_with_devices([seeker.id])  # on the driver's connection
    async with SqlAlchemyUnitOfWork(engine, single_write=True, held=held) as uow:
        people, _ = await uow.profiles.get_many_with_devices([seeker.id])
        assert await backend_pid(uow) != victim
    assert list(people) == [seeker.id]
    await held.close()
    assert engine.pool.checkedout() == 0


async def test_a_statement_cut_short_leaves_nothing_running_on_a_held_connection(engine):
    """psycopg cancels the statement on the server when its task is cancelled; the connection is held again only
    once it is at rest, so the next unit of work never meets a statement still running."""
    held = HeldConnections(engine, size=1)
    started = asyncio.Event()

    async def slow() -> None:
        async with SqlAlchemyUnitOfWork(engine, single_write=True, held=held) as uow:
            driver = (await uow._connection.get_raw_connection()).driver_connection
            started.set()
            await driver.execute("SELECT pg_sleep(30)")

    task = asyncio.create_task(slow())
    await started.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with SqlAlchemyUnitOfWork(engine, single_write=True, held=held) as uow:
        sleeping = await uow._connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND starts_with(query, 'SELECT pg_sleep')"
        )
        assert sleeping.scalar_one() == 0
    await held.close()


async def test_a_connection_left_inside_a_transaction_is_not_held_again(engine):
    held = HeldConnections(engine, size=1)
    async with SqlAlchemyUnitOfWork(engine, single_write=True, held=held) as uow:
        driver = (await uow._connection.get_raw_connection()).driver_connection
        await driver.execute("BEGIN")
        left_open = await backend_pid(uow)
    assert held.take_idle() is None
    async with SqlAlchemyUnitOfWork(engine, single_write=True, held=held) as uow:
        assert await backend_pid(uow) != left_open
    await held.close()


@pytest.mark.parametrize("pool_size", [1, 2, 20])
async def test_the_container_never_holds_the_last_connections_of_the_pool(postgres_url, pool_size, tmp_path):
    """Held connections idle outside the pool: a transactional unit of work must still find one there."""
    env = {"DATABASE_URL": postgres_url, "DB_POOL_SIZE": str(pool_size), "WORKCAST_DATA_DIR": str(tmp_path)}
    container = build_container(Settings.from_env(env))
    try:
        engine = container.engine()
        async with container.single_write_unit_of_work() as uow:
            await uow._connection.exec_driver_sql("SELECT 1")
        held = engine.pool.checkedout()
        assert held <= pool_size // 2
        async with asyncio.timeout(10):  # the pool's own wait is 30 s
            async with container.unit_of_work() as uow:
                await uow._connection.exec_driver_sql("SELECT 1")
    finally:
        await container.held_connections().close()
        await container.engine().dispose()
