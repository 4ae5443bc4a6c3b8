from __future__ import annotations

from dataclasses import dataclass

from application.errors import BrokerUnavailable
from application.ports import RealtimeBroker, UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.errors import InvalidInput
from domain.geo import MAX_RADIUS_KM, GeoPoint
from domain.profiles import Profile

MAX_LIMIT = 500


@dataclass(frozen=True)
class ActiveProvider:
    profile: Profile
    distance_km: float | None
    online: bool | None = None  # a live socket right now; None when the broker cannot tell


class ListActiveProviders:
    """Providers accepting work; near a point, nearest first (only those within the radius, if one is given).

    The store answers from its spatial index (adapters/geo), exactly by great-circle distance."""

    def __init__(self, uow_factory: UnitOfWorkFactory, broker: RealtimeBroker) -> None:
        self._uow_factory = uow_factory
        self._broker = broker

    async def execute(
        self, caller_id: int, near: GeoPoint | None = None, radius_km: float | None = None, limit: int = 100
    ) -> list[ActiveProvider]:
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
        if radius_km is not None:
            if near is None:
                raise InvalidInput("radius_km needs latitude and longitude", field="radius_km")
            if not 0 < radius_km <= MAX_RADIUS_KM:
                raise InvalidInput(f"radius_km must be above 0 and at most {MAX_RADIUS_KM:g}", field="radius_km")
        async with self._uow_factory() as uow:
            await caller_profile(uow, caller_id)
            if near is None:
                found = [(p, None) for p in await uow.profiles.list_active_providers(limit)]
            else:
                nearest = await uow.nearby.nearest(near, limit, radius_km)
                found = [(n.profile, n.distance_km) for n in nearest]
        online = await self._online({p.id for p, _ in found if p.id is not None})
        return [ActiveProvider(p, d, None if online is None else p.id in online) for p, d in found]

    async def _online(self, ids: set[int]) -> set[int] | None:
        try:
            return await self._broker.online(ids)
        except BrokerUnavailable:
            return None
