"""PostgreSQL: KNN over a GiST index of the ``cube`` extension.

Why ``cube`` and not PostGIS (measured in bench/geo_search.py, figures in docs/geo.md): both answer the
nearest 20 among 1,000,000 providers from a GiST index in under a millisecond; ``cube`` ships with
PostgreSQL itself (contrib), is a *trusted* extension (the database owner may create it, no superuser),
and its Euclidean ``<->`` over unit vectors orders by great-circle distance exactly, on the sphere the
domain measures on. PostGIS would add 49 Debian packages and superuser rights for nothing this search uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Float, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.geo.rows import nearest_first, position_columns
from adapters.sqlalchemy.driver import fetch_all
from adapters.sqlalchemy.repositories import profile_from_row
from adapters.sqlalchemy.tables import profiles
from adapters.sqlalchemy.types import UtcDateTime
from application.ports import NearbyProvider, NearbyProviders
from domain.geo import GeoPoint, chord_for_km

# Written out (not bound) so that the planner sees the partial index's own predicate.
_ACTIVE = "profiles.role = 'provider' AND profiles.is_active_for_work AND profiles.geo_x IS NOT NULL"
_POSITION = "cube(ARRAY[profiles.geo_x, profiles.geo_y, profiles.geo_z])"
_CENTRE = "cube(CAST(ARRAY[:x, :y, :z] AS float8[]))"
_CHORD = f"{_POSITION} <-> {_CENTRE}"
_COLUMNS = ", ".join(f"profiles.{column.name}" for column in profiles.c)  # in the order .columns() names them


def _box(chord: str) -> str:
    """The index's box around the centre: a hair wider than the chord, the exact chord test does the rest.
    (cube_enlarge ignores a radius too small to move a coordinate, e.g. a subnormal one: found by hypothesis,
    a provider 2e-311 degrees from the equator was missed by its own exact position.)"""
    return f"cube_enlarge({_CENTRE}, {chord} + 1e-12, 3)"


def _nearest(within: bool):
    """KNN from the index finds how far the K-th nearest is; a second index scan (a box that far) then
    reads every provider that near, so that equal distances are broken by id exactly. (A GiST KNN scan
    orders by distance alone: adding ``, id`` to its ORDER BY would make PostgreSQL sort the whole table.)"""
    radius = f" AND {_POSITION} <@ {_box(':chord')} AND {_CHORD} <= :chord" if within else ""
    return text(
        f"""
        WITH knn AS MATERIALIZED (
            SELECT {_CHORD} AS chord FROM profiles WHERE {_ACTIVE}{radius} ORDER BY {_CHORD} LIMIT :limit
        ), reach AS (SELECT max(chord) AS chord FROM knn)
        SELECT {_COLUMNS} FROM reach, profiles
        WHERE {_ACTIVE} AND {_POSITION} <@ {_box("reach.chord")} AND {_CHORD} <= reach.chord
        ORDER BY {_CHORD}, profiles.id LIMIT :limit
        """
    ).columns(*profiles.c)


_NEAREST = _nearest(within=False)
_WITHIN = _nearest(within=True)

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
            values["chord"] = chord_for_km(within_km)
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
