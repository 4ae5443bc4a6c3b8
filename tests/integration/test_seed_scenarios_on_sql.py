"""The seed's three scenarios again, with the use cases on SQLite and on PostgreSQL instead of memory."""

from __future__ import annotations

import pytest

from adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from tests.unit.conftest import make_world
from tests.unit.test_seed_scenarios import (  # noqa: F401  (collected here a second time, on SQL)
    test_complete_assignment_flow,
    test_offline_provider_sees_job_after_reconnect,
    test_push_fails_but_socket_delivers,
)


@pytest.fixture(params=["sqlite", "postgres"])
def world(request):
    engine = request.getfixturevalue(f"{request.param}_engine")
    return make_world(uow_factory=lambda: SqlAlchemyUnitOfWork(engine))
