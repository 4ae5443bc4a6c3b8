"""The spatial index answers exactly what brute force answers, on every store (the repository contract).

Nearest-K and within-radius over random points, with the awkward places weighted in: the poles, the
antimeridian, identical points (ties go to the lowest id) and radii up to 20,000 km.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from adapters.memory.store import MemoryStore, MemoryUnitOfWork
from adapters.sqlalchemy.engine import DatabaseSettings, create_engine
from adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from domain.geo import GeoPoint
from domain.profiles import Profile, Role
from tests.integration.conftest import TABLES

# Float noise between the store's chord arithmetic and the haversine: far below a metre.
EPS_KM = 1e-6
T0 = datetime(2026, 11, 25, tzinfo=UTC)
# The PostgreSQL database is shared with other tests, whose orders may point at profiles.
EMPTY = {"sqlite": "DELETE FROM profiles", "postgres": f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"}

latitudes = st.one_of(
    st.floats(-90, 90),
    st.sampled_from([-90.0, 90.0, -89.9999, 89.9999, 0.0]),
)
longitudes = st.one_of(
    st.floats(-180, 180),
    st.sampled_from([-180.0, 180.0, -179.9999, 179.9999, 0.0]),
)
# A city: many points close together, where nearest-K is decided by metres.
city = st.builds(GeoPoint, st.floats(48.80, 48.90), st.floats(2.25, 2.40))
points = st.one_of(st.builds(GeoPoint, latitudes, longitudes), city)


@st.composite
def populations(draw):
    base = draw(
        st.lists(
            st.tuples(points, st.sampled_from([Role.PROVIDER] * 4 + [Role.SEEKER]), st.integers(0, 4)), max_size=30
        )
    )
    twins = draw(st.lists(st.integers(0, max(0, len(base) - 1)), max_size=6)) if base else []
    return base + [base[i] for i in twins]  # identical points: ties broken by id


radii = st.one_of(st.none(), st.floats(0.001, 20_000), st.sampled_from([20_000.0, 0.5, 5.0]))


def check(found, population, centre: GeoPoint, limit: int, within_km: float | None) -> None:
    measured = sorted(
        (centre.distance_km(p.location), p.id, p.location)
        for p in population
        if p.role is Role.PROVIDER and p.is_active_for_work
    )
    bound = float("inf") if within_km is None else within_km
    surely_in = [m for m in measured if m[0] <= bound - EPS_KM]
    maybe_in = [m for m in measured if m[0] <= bound + EPS_KM]
    expected = maybe_in[:limit]
    assert min(limit, len(surely_in)) <= len(found) <= len(expected)
    for (distance, _, _), got in zip(expected, found, strict=False):
        assert abs(got.distance_km - distance) <= EPS_KM
    # Where no two different places are within float noise of each other, the ids agree exactly.
    window = maybe_in[: limit + 1]
    ambiguous = any(abs(a[0] - b[0]) <= EPS_KM and a[2] != b[2] for i, a in enumerate(window) for b in window[i + 1 :])
    if not ambiguous:
        assert [g.profile.id for g in found] == [m[1] for m in expected[: len(found)]]
    for a, b in itertools.pairwise(found):
        assert a.distance_km <= b.distance_km + EPS_KM
        if a.profile.location == b.profile.location:
            assert a.profile.id < b.profile.id


def database_url(store: str, request) -> str:
    if store == "postgres":
        return request.getfixturevalue("postgres_url")
    copy = request.getfixturevalue("tmp_path") / "nearby.sqlite3"  # the template stays empty for others
    copy.write_bytes(request.getfixturevalue("sqlite_template").read_bytes())
    return f"sqlite+aiosqlite:///{copy}"


class StoreUnderTest:
    """One store for a synchronous test (hypothesis drives it): units of work on its own event loop."""

    def __init__(self, kind: str, request) -> None:
        self.kind = kind
        self.memory = MemoryStore()
        self.engine = None if kind == "memory" else create_engine(DatabaseSettings(database_url(kind, request)))
        self.loop = asyncio.new_event_loop()

    def unit_of_work(self):
        return MemoryUnitOfWork(self.memory) if self.engine is None else SqlAlchemyUnitOfWork(self.engine)

    async def empty(self) -> None:
        if self.engine is None:
            self.memory.tables.profiles.clear()
            return
        async with self.unit_of_work() as uow:
            await uow._connection.execute(text(EMPTY[self.kind]))
            await uow.commit()

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        try:
            if self.engine is not None:
                self.run(self.engine.dispose())
        finally:
            self.loop.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request):
    under_test = StoreUnderTest(request.param, request)
    yield under_test
    under_test.close()


def test_nearest_and_within_agree_with_brute_force(store):
    async def example(population_spec, centre, limit, within_km):
        await store.empty()
        async with store.unit_of_work() as uow:
            population = []
            for location, role, activity in population_spec:
                active = role is Role.PROVIDER and activity > 0
                profile = Profile(
                    role, "P", "800", is_active_for_work=active, location=location, location_updated_at=T0
                )
                population.append(await uow.profiles.add(profile))
            await uow.commit()
        async with store.unit_of_work() as uow:
            found = await uow.nearby.nearest(centre, limit, within_km)
        check(found, population, centre, limit, within_km)

    @settings(
        max_examples=100 if store.kind != "memory" else 300,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(populations(), points, st.integers(1, 12), radii)
    def run(population_spec, centre, limit, within_km):
        store.run(example(population_spec, centre, limit, within_km))

    run()


def test_live_positions_move_providers_only(store):
    """move_many updates providers' positions (and what the index sees); other ids are skipped."""

    async def scenario():
        await store.empty()
        async with store.unit_of_work() as uow:
            far = GeoPoint(10, 10)
            moving = await uow.profiles.add(Profile(Role.PROVIDER, "M", "1", is_active_for_work=True, location=far))
            staying = await uow.profiles.add(Profile(Role.PROVIDER, "S", "2", is_active_for_work=True, location=far))
            seeker = await uow.profiles.add(Profile(Role.SEEKER, "K", "3", location=far))
            await uow.commit()
        here = GeoPoint(48.85, 2.35)
        async with store.unit_of_work() as uow:
            moved = await uow.nearby.move_many({moving.id: here, seeker.id: here, 10**12: here}, T0)
            await uow.commit()
        assert moved == 1
        async with store.unit_of_work() as uow:
            nearest = await uow.nearby.nearest(here, 5, within_km=1)
            assert [n.profile.id for n in nearest] == [moving.id]
            assert nearest[0].profile.location == here and nearest[0].profile.location_updated_at == T0
            assert (await uow.profiles.get(seeker.id)).location == far
            assert (await uow.profiles.get(staying.id)).location == far

    store.run(scenario())


def test_a_provider_a_subnormal_distance_away_is_found(store):
    """Found by hypothesis under load: latitude 2.2e-311 (a subnormal float) was missed by PostgreSQL's box."""

    async def scenario():
        await store.empty()
        async with store.unit_of_work() as uow:
            odd = GeoPoint(2.225073858507e-311, 0.0)
            found = await uow.profiles.add(Profile(Role.PROVIDER, "P", "1", is_active_for_work=True, location=odd))
            await uow.commit()
        for within in (None, 0.001, 1.0):
            async with store.unit_of_work() as uow:
                nearest = await uow.nearby.nearest(GeoPoint(0.0, 0.0), 3, within)
            assert [n.profile.id for n in nearest] == [found.id], within

    store.run(scenario())
