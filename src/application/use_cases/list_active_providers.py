from __future__ import annotations

from dataclasses import dataclass

from application.errors import BrokerUnavailable
from application.ports import BoundingBox, RealtimeBroker, UnitOfWorkFactory
from application.use_cases._caller import caller_profile
from domain.errors import InvalidInput
from domain.geo import GeoPoint
from domain.profiles import Profile

MAX_RADIUS_KM = 20_000.0
MAX_LIMIT = 500


@dataclass(frozen=True)
class ActiveProvider:
    profile: Profile
    distance_km: float | None
    online: bool | None = None  # a live socket right now; None when the broker cannot tell


class ListActiveProviders:
    """Providers accepting work; near a point, only those within the radius, nearest first."""

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
                found = [(p, None) for p in await uow.profiles.list_active_providers(None, limit)]
            else:
                box = BoundingBox(*near.bounding_box(radius_km)) if radius_km is not None else None
                # Within a box the store cannot sort by true distance, so read them all and sort here.
                candidates = await uow.profiles.list_active_providers(box, 100_000)
        if near is not None:
            located = [(p, near.distance_km(p.location)) for p in candidates if p.location is not None]
            found = sorted(
                ((p, d) for p, d in located if radius_km is None or d <= radius_km),
                key=lambda pair: (pair[1], pair[0].id),
            )[:limit]
        online = await self._online({p.id for p, _ in found if p.id is not None})
        return [ActiveProvider(p, d, None if online is None else p.id in online) for p, d in found]

    async def _online(self, ids: set[int]) -> set[int] | None:
        try:
            return await self._broker.online(ids)
        except BrokerUnavailable:
            return None
