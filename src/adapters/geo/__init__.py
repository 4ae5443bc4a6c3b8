"""The spatial index over active providers: nearest-K and within-radius searches, and live-location writes.

Every store keeps each provider's position as a unit vector on the sphere (``geo_x``, ``geo_y``, ``geo_z``:
``GeoPoint.unit_vector``). The straight-line distance between two such vectors is a strictly growing
function of the great-circle distance, so a plain 3-D index answers "nearest first" exactly, at the poles
and across the antimeridian alike, with no projection and no special cases:

- PostgreSQL: the ``cube`` extension's GiST index over ``cube(ARRAY[geo_x, geo_y, geo_z])``, partial on
  active providers, with KNN ordering (``<->``) — see ``postgres.py`` and docs/geo.md for why not PostGIS.
- SQLite: an R*Tree virtual table (``provider_positions``) kept in step by triggers — ``sqlite.py``.
- Memory (unit tests): a scan — ``memory.py``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from application.ports import NearbyProviders

# Engine-specific schema objects the migrations create outside the shared table metadata.
POSTGRES_INDEX = "ix_profiles_provider_position"
SQLITE_RTREE = "provider_positions"  # and its shadow tables provider_positions_node/_parent/_rowid


def nearby_for(connection: AsyncConnection) -> NearbyProviders:
    if connection.dialect.name == "postgresql":
        from adapters.geo.postgres import CubeNearbyProviders

        return CubeNearbyProviders(connection)
    from adapters.geo.sqlite import RTreeNearbyProviders

    return RTreeNearbyProviders(connection)
