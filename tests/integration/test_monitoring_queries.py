"""The operators' SQL in docs/operating.md runs on both engines and agrees with the code's delivery status."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.sqlalchemy import monitoring
from adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from application.ports import PushTokenInvalid
from tests.unit.conftest import make_world

OPERATING = (Path(__file__).resolve().parents[2] / "docs" / "operating.md").read_text()


def test_the_operating_guide_shows_the_queries_the_tests_run():
    for query in (monitoring.DELIVERY_STATUS_COUNTS, monitoring.RECENT_WORK_ORDERS, monitoring.ACTIVE_PROVIDERS):
        assert query in OPERATING


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request):
    return request.getfixturevalue(f"{request.param}_engine")


async def test_delivery_status_counts_agree_with_the_domain(engine):
    world = make_world(uow_factory=lambda: SqlAlchemyUnitOfWork(engine))
    seeker, provider, offline = await world.seeker(), await world.provider(), await world.provider("Offline")
    await world.register_device.execute(provider.id, "dead-token")
    world.push.outcome = lambda d: PushTokenInvalid("UNREGISTERED")
    await world.connect(seeker)
    first = await world.assign(seeker, provider)  # push fails, no socket; but answered below: delivered
    await world.assign(seeker, offline)  # no device, no socket: failed
    answered = await world.respond.execute(provider.id, first.order.id, True)  # seeker's socket: sent
    await world.acknowledge.execute(seeker.id, answered.seeker_notification.id)  # delivered

    await world.settle()
    expected = Counter()
    async with world.uow() as uow:
        for user in (seeker, provider, offline):
            expected.update(n.delivery_status.value for n in await uow.notifications.list_for_user(user.id, 100, None))
    async with engine.connect() as connection:
        rows = (await connection.execute(text(monitoring.DELIVERY_STATUS_COUNTS))).all()
        assert dict(rows) == dict(expected) == {"delivered": 2, "failed": 1}
        assert len((await connection.execute(text(monitoring.ACTIVE_PROVIDERS))).all()) == 2
        assert len((await connection.execute(text(monitoring.RECENT_WORK_ORDERS))).all()) == 2
