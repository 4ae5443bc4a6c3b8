"""Races on a real PostgreSQL: two answers to one order, two dispatchers claiming at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from adapters.sqlalchemy.engine import DatabaseSettings, create_engine
from adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from domain.errors import AlreadyAnswered
from domain.work_orders import WorkStatus
from tests.integration.test_repository_contract import T0, add_people, new_notification, new_order
from tests.unit.conftest import make_world


@pytest.fixture
async def two_instances(postgres_engine, postgres_url):
    """Two engines with their own pools, as two app instances would have."""
    other = create_engine(DatabaseSettings(postgres_url))
    yield (lambda: SqlAlchemyUnitOfWork(postgres_engine)), (lambda: SqlAlchemyUnitOfWork(other))
    await other.dispose()


async def test_interleaved_answers_from_two_instances_record_exactly_one(two_instances):
    instance_a, instance_b = two_instances
    seeker, (provider, _) = await add_people(instance_a)
    async with instance_a() as uow:
        order = await uow.work_orders.add(new_order(seeker, provider))
        await uow.commit()

    async with instance_a() as uow_a, instance_b() as uow_b:
        # Both read the order while it is pending, and both decide their answer is valid.
        seen_by_a, seen_by_b = await uow_a.work_orders.get(order.id), await uow_b.work_orders.get(order.id)
        seen_by_a.answer(provider.id, True, T0)
        seen_by_b.answer(provider.id, False, T0)
        assert await uow_a.work_orders.save_transition(seen_by_a, WorkStatus.PENDING)
        # B's UPDATE waits on A's row lock...
        b_writes = asyncio.create_task(uow_b.work_orders.save_transition(seen_by_b, WorkStatus.PENDING))
        await asyncio.sleep(0.2)
        assert not b_writes.done()
        await uow_a.commit()
        # ...and once A commits, PostgreSQL re-checks B's WHERE status = 'pending' on the new row: no match.
        assert await b_writes is False
        await uow_b.commit()

    async with instance_a() as uow:
        assert (await uow.work_orders.get(order.id)).status is WorkStatus.ACCEPTED


async def test_concurrent_respond_use_cases_have_one_winner(two_instances):
    instance_a, instance_b = two_instances
    world_a, world_b = make_world(uow_factory=instance_a), make_world(uow_factory=instance_b)
    world_b.clock = world_a.clock
    seeker, provider = await world_a.seeker(), await world_a.provider()
    for _ in range(10):
        assignment = await world_a.assign(seeker, provider)
        outcomes = await asyncio.gather(
            world_a.respond.execute(provider.id, assignment.order.id, True),
            world_b.respond.execute(provider.id, assignment.order.id, False),
            return_exceptions=True,
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["AlreadyAnswered", "WorkAnswerRecorded"], outcomes
        async with instance_a() as uow:
            answers = [
                n
                for n in await uow.notifications.list_for_user(seeker.id, 100, None)
                if n.work_id == assignment.order.id
            ]
        assert len(answers) == 1
    assert AlreadyAnswered  # the loser's error type, as the API turns it into 409


async def test_two_dispatchers_claim_disjoint_batches(two_instances):
    instance_a, instance_b = two_instances
    seeker, (provider, _) = await add_people(instance_a)
    async with instance_a() as uow:
        order = await uow.work_orders.add(new_order(seeker, provider))
        await uow.notifications.add_many([new_notification(provider, order, next_attempt_at=T0) for _ in range(6)])
        await uow.commit()
    async with instance_a() as uow_a, instance_b() as uow_b:
        claimed_a = await uow_a.notifications.claim_due(T0 + timedelta(seconds=1), 4)
        claimed_b = await uow_b.notifications.claim_due(T0 + timedelta(seconds=1), 4)
        assert len(claimed_a) == 4 and len(claimed_b) == 2
        assert not {n.id for n in claimed_a} & {n.id for n in claimed_b}
