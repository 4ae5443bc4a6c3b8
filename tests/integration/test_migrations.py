"""The schema comes from migrations only, and the migrations agree with the tables the code uses."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import inspect, text

from adapters.geo import POSTGRES_INDEX, SQLITE_RTREE
from adapters.sqlalchemy.engine import DatabaseSettings, create_engine
from adapters.sqlalchemy.migrate import upgrade
from adapters.sqlalchemy.tables import metadata
from adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from domain.geo import GeoPoint
from tests.fixtures.servers import create_database, free_port

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def sync_url(url: str) -> str:
    return url.replace("+aiosqlite", "").replace("+psycopg", "+psycopg")


@pytest.fixture(params=["sqlite", "postgres"])
def migrated_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}"
    else:
        url = create_database(request.getfixturevalue("postgres"), "workcast_migrations")
    upgrade(url)
    return url


def engine_specific(name: str | None) -> bool:
    """The spatial index is built differently per engine (adapters/geo), outside the shared metadata."""
    return bool(name) and (name == POSTGRES_INDEX or name.startswith(SQLITE_RTREE))


def test_migrations_produce_exactly_the_tables_of_the_code(migrated_url):
    engine = create_sync_engine(sync_url(migrated_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "include_name": lambda name, kind, parent: not engine_specific(name)},
            )
            assert compare_metadata(context, metadata) == []
            tables = {t for t in inspect(connection).get_table_names() if not engine_specific(t)}
    finally:
        engine.dispose()
    assert tables == set(metadata.tables) | {"alembic_version"}


def test_both_engines_get_the_same_indexes(tmp_path, postgres):
    def indexes(url):
        upgrade(url)
        engine = create_sync_engine(sync_url(url))
        try:
            with engine.connect() as connection:
                inspector = inspect(connection)
                # PostgreSQL lists the index behind a UNIQUE constraint too; SQLite does not.
                return {
                    t: sorted(
                        i["name"]
                        for i in inspector.get_indexes(t)
                        if not i["name"].startswith("uq_") and not engine_specific(i["name"])
                    )
                    for t in metadata.tables
                }
        finally:
            engine.dispose()

    sqlite_indexes = indexes(f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite3'}")
    postgres_indexes = indexes(create_database(postgres, "workcast_indexes"))
    assert sqlite_indexes == postgres_indexes
    assert "ix_notifications_next_attempt_at" in sqlite_indexes["notifications"]


@pytest.fixture(params=["sqlite", "postgres"])
def url_at_0006(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        url = create_database(request.getfixturevalue("postgres"), f"workcast_old{free_port()}")
    upgrade(url, "0006")
    return url


def test_the_spatial_index_and_broadcasts_arrive_on_a_database_with_data(url_at_0006):
    """0007 fills the vectors of existing locations and builds the index; 0008 changes work_orders, whose
    rebuild on SQLite must not cascade to the notifications."""
    engine = create_sync_engine(sync_url(url_at_0006))
    try:
        with engine.begin() as db:
            insert = "INSERT INTO profiles (role, name, mobile, is_active_for_work, latitude, longitude, external_id)"
            db.execute(text(f"{insert} VALUES ('seeker', 'S', '1', false, NULL, NULL, 's')"))
            db.execute(text(f"{insert} VALUES ('provider', 'P', '2', true, 40.4168, -3.7038, 'p')"))
            ids = dict(db.execute(text("SELECT external_id, id FROM profiles")).all())
            db.execute(
                text(
                    "INSERT INTO work_orders (seeker_id, provider_id, service_type, message, distance, latitude,"
                    " longitude, status, created_at, expires_at) VALUES (:s, :p, 'x', '', '', 1, 2, 'pending',"
                    " :at, :at)"
                ),
                {"s": ids["s"], "p": ids["p"], "at": T0},
            )
            work_id = db.execute(text("SELECT id FROM work_orders")).scalar()
            db.execute(
                text(
                    "INSERT INTO notifications (recipient_id, kind, work_id, payload, created_at, push_state,"
                    " socket_state, attempts) VALUES (:p, 'work_assigned', :w, '{}', :at, 'pending', 'pending', 0)"
                ),
                {"p": ids["p"], "w": work_id, "at": T0},
            )
    finally:
        engine.dispose()
    upgrade(url_at_0006)

    async def check():
        engine = create_engine(DatabaseSettings(url_at_0006))
        try:
            async with SqlAlchemyUnitOfWork(engine) as uow:
                found = await uow.nearby.nearest(GeoPoint(40.42, -3.70), 5, within_km=5)
                assert [n.profile.id for n in found] == [ids["p"]]
                assert len(await uow.notifications.list_for_work(work_id, 10)) == 1
                order = await uow.work_orders.get(work_id)
                assert order.provider_id == ids["p"] and not order.is_broadcast
        finally:
            await engine.dispose()

    asyncio.run(check())
