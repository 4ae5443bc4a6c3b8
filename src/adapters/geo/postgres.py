"""PostgreSQL: KNN over a GiST index of the ``cube`` extension.

Why ``cube`` and not PostGIS (measured in bench/geo_search.py, figures in docs/geo.md): both answer the
nearest 20 among 1,000,000 providers from a GiST index in about a millisecond; ``cube`` ships with
PostgreSQL itself (contrib), is a *trusted* extension (the database owner may create it, no superuser),
and its Euclidean ``<->`` over unit vectors orders by great-circle distance exactly — the same sphere the
domain measures on. PostGIS would add a 100 MB package and superuser rights for nothing this search uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Float, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.geo.rows import nearest_first, position_columns
from adapters.sqlalchemy.driver import fetch_all
from adapters.sqlalchemy.repositories import profile_from_row
from adapters.sqlalchemy.tables import profiles
from adapters.sqlalchemy.types import UtcDateTime
from application.ports import NearbyProvider, NearbyProviders
from domain.geo import GeoPoint, chord_for_km

# Written out (not bound) so that the planner sees the partial index's own predicate.
_INDEXED = text("profiles.role = 'provider' AND profiles.is_active_for_work AND profiles.geo_x IS NOT NULL")
_POSITION = func.cube(array([profiles.c.geo_x, profiles.c.geo_y, profiles.c.geo_z]))


def _point(prefix: str):
    return func.cube(array([bindparam(f"{prefix}{axis}", type_=Float) for axis in "xyz"]))


_CHORD = _POSITION.op("<->", return_type=Float)(_point(""))
_NEAREST = select(profiles).where(_INDEXED).order_by(_CHORD, profiles.c.id).limit(bindparam("limit"))
# The box lets the index skip everything outside the radius; the chord test makes it a ball.
_WITHIN = _NEAREST.where(
    _POSITION.op("<@", is_comparison=True)(
        func.cube(
            array([bindparam(f"low_{a}", type_=Float) for a in "xyz"]),
            array([bindparam(f"high_{a}", type_=Float) for a in "xyz"]),
        )
    ),
    bindparam("chord", type_=Float) >= _CHORD,
)

# One statement for a whole batch of positions: arrays in, one UPDATE ... FROM unnest(...).
_MOVE = text(
    """
    UPDATE profiles SET latitude = moved.latitude, longitude = moved.longitude,
        geo_x = moved.geo_x, geo_y = moved.geo_y, geo_z = moved.geo_z, location_updated_at = :at
    FROM unnest(:ids, :latitudes, :longitudes, :xs, :ys, :zs)
        AS moved(id, latitude, longitude, geo_x, geo_y, geo_z)
    WHERE profiles.id = moved.id AND profiles.role = 'provider' AND profiles.deleted_at IS NULL
    """
).bindparams(
    bindparam("ids", type_=ARRAY(profiles.c.id.type)),
    *(bindparam(name, type_=ARRAY(Float)) for name in ("latitudes", "longitudes", "xs", "ys", "zs")),
    bindparam("at", type_=UtcDateTime),
)


class CubeNearbyProviders(NearbyProviders):
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def nearest(self, near: GeoPoint, limit: int, within_km: float | None = None) -> list[NearbyProvider]:
        x, y, z = near.unit_vector()
        values: dict[str, float | int] = {"x": x, "y": y, "z": z, "limit": limit}
        statement = _NEAREST
        if within_km is not None:
            chord = chord_for_km(within_km)
            values["chord"] = chord
            for axis, value in zip("xyz", (x, y, z), strict=True):
                values[f"low_{axis}"], values[f"high_{axis}"] = value - chord, value + chord
            statement = _WITHIN
        rows = await fetch_all(self._c, statement, values)
        return nearest_first(near, rows, profile_from_row)

    async def move_many(self, positions: Mapping[int, GeoPoint], at: datetime) -> int:
        if not positions:
            return 0
        columns = [position_columns(point) for point in positions.values()]
        result = await self._c.execute(
            _MOVE,
            {
                "ids": list(positions),
                "at": at,
                **{
                    plural: [c[name] for c in columns]
                    for plural, name in (
                        ("latitudes", "latitude"),
                        ("longitudes", "longitude"),
                        ("xs", "geo_x"),
                        ("ys", "geo_y"),
                        ("zs", "geo_z"),
                    )
                },
            },
        )
        return result.rowcount
