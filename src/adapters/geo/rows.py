"""What the SQL stores share: the columns a position writes, and rows made into answers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from application.ports import NearbyProvider
from domain.geo import GeoPoint


def position_columns(location: GeoPoint | None) -> dict[str, Any]:
    """Every column a location is stored in: what the app reads, and the unit vector the index reads."""
    x, y, z = location.unit_vector() if location else (None, None, None)
    return {
        "latitude": location.latitude if location else None,
        "longitude": location.longitude if location else None,
        "geo_x": x,
        "geo_y": y,
        "geo_z": z,
    }


def nearest_first(near: GeoPoint, rows: Iterable[Any], to_profile) -> list[NearbyProvider]:
    """Rows already in index order, with their great-circle distance from ``near``."""
    found = []
    for row in rows:
        profile = to_profile(row)
        found.append(NearbyProvider(profile, near.distance_km(profile.location)))
    return found
