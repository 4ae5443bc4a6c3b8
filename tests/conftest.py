"""Session-wide servers. They start only when a test asks for them, and stop at the end of the run."""

from __future__ import annotations

import pytest

from tests.fixtures.servers import PostgresServer, create_database, postgres_server


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
