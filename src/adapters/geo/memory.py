"""The in-memory store's nearby search (unit tests): every active provider measured, nearest first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from application.ports import NearbyProvider, NearbyProviders
from domain.geo import GeoPoint
from domain.profiles import Role


class MemoryNearbyProviders(NearbyProviders):
    def __init__(self, tables: Any) -> None:
        self._t = tables  # adapters.memory.store.MemoryTables

    async def nearest(self, near: GeoPoint, limit: int, within_km: float | None = None) -> list[NearbyProvider]:
        measured = [
            NearbyProvider(replace(p), near.distance_km(p.location))
            for p in self._t.profiles.values()
            if p.role is Role.PROVIDER and p.is_active_for_work and p.location is not None
        ]
        if within_km is not None:
            measured = [m for m in measured if m.distance_km <= within_km]
        measured.sort(key=lambda m: (m.distance_km, m.profile.id))
        return measured[:limit]

    async def move_many(self, positions: Mapping[int, GeoPoint], at: datetime) -> int:
        moved = 0
        for provider_id, point in positions.items():
            profile = self._t.profiles.get(provider_id)
            if profile is None or profile.role is not Role.PROVIDER or profile.deleted_at is not None:
                continue
            self._t.profiles[provider_id] = replace(profile, location=point, location_updated_at=at)
            moved += 1
        return moved
