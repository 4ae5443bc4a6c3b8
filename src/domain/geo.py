"""Geographic points and distances."""

from __future__ import annotations

import math
from dataclasses import dataclass

from domain.errors import InvalidLocation

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
MAX_RADIUS_KM = 20_000.0  # a search radius past half the circumference (~20,015 km) would add nothing


@dataclass(frozen=True)
class GeoPoint:
    """A WGS 84 position. Latitude in [-90, 90], longitude in [-180, 180], both finite."""

    latitude: float
    longitude: float

    def __post_init__(self) -> None:
        for name, value, limit in (("latitude", self.latitude, 90.0), ("longitude", self.longitude, 180.0)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidLocation(f"{name} must be a number", field=name)
            if not math.isfinite(value) or not -limit <= value <= limit:
                raise InvalidLocation(f"{name} must be a finite number between {-limit:g} and {limit:g}", field=name)
        object.__setattr__(self, "latitude", float(self.latitude))
        object.__setattr__(self, "longitude", float(self.longitude))

    def distance_km(self, other: GeoPoint) -> float:
        """Great-circle distance by the haversine formula."""
        lat1, lon1, lat2, lon2 = map(math.radians, (self.latitude, self.longitude, other.latitude, other.longitude))
        h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
        return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))

    def unit_vector(self) -> tuple[float, float, float]:
        """The point on the unit sphere in Earth-centred coordinates.

        The straight-line (chord) distance between two such vectors grows with the great-circle distance,
        so a spatial index over them orders by true distance: nearest-first is exact, not approximate.
        """
        lat, lon = math.radians(self.latitude), math.radians(self.longitude)
        return math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)


def chord_for_km(distance_km: float) -> float:
    """The unit-sphere chord that spans ``distance_km`` along the surface (the inverse of the haversine)."""
    angle = min(distance_km / EARTH_RADIUS_KM, math.pi)
    return 2 * math.sin(angle / 2)
