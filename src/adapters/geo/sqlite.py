"""SQLite: an R*Tree over the providers' unit vectors, searched in widening boxes.

SQLite's R*Tree answers "which points are in this box" from its index but has no nearest-neighbour
operator, so the search asks for the points within a ball of chord ``c`` (a box query, then the exact
chord test in SQL, nearest first, at most K). If K come back they are the K nearest: anything outside
the ball is farther than all of them. Otherwise ``c`` doubles (up to the radius asked, or the whole
sphere). Each round reads only the points inside its ball, so a search reads a few times K rows, not
every candidate. The R*Tree holds active providers only; triggers on ``profiles`` keep it in step
(migration 0007).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import bindparam, column, select, table, update
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.geo.rows import nearest_first, position_columns
from adapters.sqlalchemy.driver import fetch_all
from adapters.sqlalchemy.repositories import profile_from_row
from adapters.sqlalchemy.tables import profiles
from adapters.sqlalchemy.types import UtcDateTime
from application.ports import NearbyProvider, NearbyProviders
from domain.geo import GeoPoint, chord_for_km

from . import SQLITE_RTREE

WHOLE_SPHERE = 2.0  # the longest chord of the unit sphere
FIRST_CHORD = chord_for_km(2.0)  # a city block: most searches in a busy area end in the first round

_rtree = table(SQLITE_RTREE, *(column(name) for name in ("id", "min_x", "max_x", "min_y", "max_y", "min_z", "max_z")))
_dx, _dy, _dz = ((profiles.c[f"geo_{axis}"] - bindparam(axis)) for axis in "xyz")
_squared_chord = _dx * _dx + _dy * _dy + _dz * _dz
_IN_BALL = (
    select(profiles)
    .select_from(_rtree.join(profiles, profiles.c.id == _rtree.c.id))
    .where(
        *(_rtree.c[f"min_{axis}"] <= bindparam(f"high_{axis}") for axis in "xyz"),
        *(_rtree.c[f"max_{axis}"] >= bindparam(f"low_{axis}") for axis in "xyz"),
        _squared_chord <= bindparam("squared_chord"),
        profiles.c.role == "provider",
        profiles.c.is_active_for_work,
    )
    .order_by(_squared_chord, profiles.c.id)
    .limit(bindparam("limit"))
)

_MOVE = (
    update(profiles)
    .where(profiles.c.id == bindparam("b_id"), profiles.c.role == "provider", profiles.c.deleted_at.is_(None))
    .values(
        {
            **{name: bindparam(f"b_{name}") for name in ("latitude", "longitude", "geo_x", "geo_y", "geo_z")},
            "location_updated_at": bindparam("b_at", type_=UtcDateTime),
        }
    )
)


class RTreeNearbyProviders(NearbyProviders):
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def nearest(self, near: GeoPoint, limit: int, within_km: float | None = None) -> list[NearbyProvider]:
        centre = dict(zip("xyz", near.unit_vector(), strict=True))
        widest = WHOLE_SPHERE if within_km is None else min(WHOLE_SPHERE, chord_for_km(within_km))
        chord = min(FIRST_CHORD, widest)
        while True:
            values = {**centre, "squared_chord": chord * chord, "limit": limit}
            for axis, value in centre.items():
                values[f"low_{axis}"], values[f"high_{axis}"] = value - chord, value + chord
            rows = await fetch_all(self._c, _IN_BALL, values)
            if len(rows) == limit or chord >= widest:
                return nearest_first(near, rows, profile_from_row)
            chord = min(chord * 2, widest)

    async def move_many(self, positions: Mapping[int, GeoPoint], at: datetime) -> int:
        if not positions:
            return 0
        rows = [
            {"b_id": provider_id, "b_at": at, **{f"b_{k}": v for k, v in position_columns(point).items()}}
            for provider_id, point in positions.items()
        ]
        result = await self._c.execute(_MOVE, rows)
        return result.rowcount
