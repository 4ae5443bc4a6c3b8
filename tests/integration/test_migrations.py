"""The schema comes from migrations only, and the migrations agree with the tables the code uses."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import inspect

from adapters.geo import POSTGRES_INDEX, SQLITE_RTREE
from adapters.sqlalchemy.migrate import upgrade
from adapters.sqlalchemy.tables import metadata
from tests.fixtures.servers import create_database


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
