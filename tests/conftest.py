"""Session-wide servers. They start only when a test asks for them, and stop at the end of the run."""

from __future__ import annotations

import pytest

from tests.fixtures.servers import PostgresServer, RedisServer, create_database, postgres_server, redis_server


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """One migrated database for the session; tests empty its tables before they run."""
    from adapters.sqlalchemy.migrate import upgrade

    url = create_database(postgres, "workcast_test")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def redis() -> RedisServer:
    with redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis: RedisServer) -> str:
    """The session's Redis, running again if a test stopped it."""
    if redis.process is None:
        redis.start()
    return redis.url
