"""The writes that go to the driver directly (adapters/sqlalchemy/driver.py) behave as through SQLAlchemy."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from adapters.sqlalchemy.tables import notifications, work_orders
from adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from tests.integration.test_repository_contract import T0, add_people, new_notification, new_order


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request):
    return request.getfixturevalue(f"{request.param}_engine")


async def count(engine, table) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(table))).scalar_one()


async def test_driver_errors_surface_as_sqlalchemy_errors(engine):
    seeker, (provider, _) = await add_people(lambda: SqlAlchemyUnitOfWork(engine))
    ghost = type(provider)(provider.role, "Ghost", "0", id=999_999)
    with pytest.raises(IntegrityError):  # the foreign key to profiles, checked by the database
        async with SqlAlchemyUnitOfWork(engine) as uow:
            await uow.work_orders.add(new_order(seeker, ghost))
    assert await count(engine, work_orders) == 0


async def test_driver_writes_are_inside_the_unit_of_work(engine):
    seeker, (provider, _) = await add_people(lambda: SqlAlchemyUnitOfWork(engine))
    async with SqlAlchemyUnitOfWork(engine) as uow:  # not committed: everything is rolled back
        order = await uow.work_orders.add(new_order(seeker, provider))
        notification = new_notification(provider, order)
        await uow.notifications.add_many([notification])
        notification.socket_sent()
        await uow.notifications.save_deliveries([notification])
    assert (await count(engine, work_orders), await count(engine, notifications)) == (0, 0)

    async with SqlAlchemyUnitOfWork(engine) as uow:
        order = await uow.work_orders.add(new_order(seeker, provider))
        notification = new_notification(provider, order)
        await uow.notifications.add_many([notification])
        await uow.commit()
    async with SqlAlchemyUnitOfWork(engine) as uow:
        notification.socket_sent()
        notification.delivered_at = T0
        await uow.notifications.save_deliveries([notification])
        await uow.commit()
    async with SqlAlchemyUnitOfWork(engine) as uow:
        assert await uow.notifications.get(notification.id) == notification
        assert await uow.work_orders.get(order.id) == order


async def test_a_pooled_connection_killed_by_the_server_fails_once_then_is_replaced(postgres_engine, postgres_url):
    """As after a PostgreSQL restart: the dead connection is StorageUnavailable (a 503), then dropped from the pool."""
    import psycopg

    from adapters.sqlalchemy.engine import DatabaseSettings, create_engine
    from application.errors import StorageUnavailable

    seeker, _ = await add_people(lambda: SqlAlchemyUnitOfWork(postgres_engine))
    engine = create_engine(DatabaseSettings(postgres_url, pool_size=1, max_overflow=0))
    try:
        async with SqlAlchemyUnitOfWork(engine) as uow:  # the one pooled connection exists now
            await uow.profiles.get_many_with_devices([seeker.id])
        admin_url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'workcast' AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StorageUnavailable):
            async with SqlAlchemyUnitOfWork(engine) as uow:
                await uow.profiles.get_many_with_devices([seeker.id])  # on the driver's connection
        async with SqlAlchemyUnitOfWork(engine) as uow:
            people, _ = await uow.profiles.get_many_with_devices([seeker.id])
        assert list(people) == [seeker.id]
    finally:
        await engine.dispose()
