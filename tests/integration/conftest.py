"""Stores for the contract suite: the same tests against memory, SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.memory.store import MemoryStore, MemoryUnitOfWork
from adapters.sqlalchemy.engine import DatabaseSettings, create_engine
from adapters.sqlalchemy.migrate import upgrade
from adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork

TABLES = "delivery_attempts, notifications, device_tokens, work_orders, profiles"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file; each test gets a copy, which is faster than migrating again."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
async def sqlite_engine(sqlite_template, tmp_path):
    path = tmp_path / "workcast.sqlite3"
    shutil.copy(sqlite_template, path)
    engine = create_engine(DatabaseSettings(f"sqlite+aiosqlite:///{path}"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def postgres_engine(postgres_url):
    engine = create_engine(DatabaseSettings(postgres_url))
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    yield engine
    await engine.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def uow_factories(request):
    """Over a fresh, empty store of each kind: a factory of units of work and one of single-write units."""
    if request.param == "memory":
        store = MemoryStore()
        return (lambda: MemoryUnitOfWork(store),) * 2
    engine = request.getfixturevalue(f"{request.param}_engine")
    return lambda: SqlAlchemyUnitOfWork(engine), lambda: SqlAlchemyUnitOfWork(engine, single_write=True)


@pytest.fixture
def uow_factory(uow_factories):
    """A factory of units of work over a fresh, empty store of each kind."""
    return uow_factories[0]
