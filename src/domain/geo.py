"""Geographic points and distances."""

from __future__ import annotations

import math
from dataclasses import dataclass

from domain.errors import InvalidLocation

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)


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

    def bounding_box(self, radius_km: float) -> tuple[float, float, float, float]:
        """(min_lat, max_lat, min_lon, max_lon) that contains every point within ``radius_km``.

        Lets a store pre-filter with plain comparisons before the exact haversine check.
        Near the poles or across the antimeridian the longitude range widens to the full circle.
        """
        angular = radius_km / EARTH_RADIUS_KM
        delta_lat = math.degrees(angular)
        min_lat, max_lat = self.latitude - delta_lat, self.latitude + delta_lat
        whole_circle = (max(min_lat, -90.0), min(max_lat, 90.0), -180.0, 180.0)
        if min_lat <= -90 or max_lat >= 90 or angular >= math.pi / 2:
            return whole_circle
        ratio = math.sin(angular) / math.cos(math.radians(self.latitude))
        if ratio >= 1:
            return whole_circle
        delta_lon = math.degrees(math.asin(ratio))
        min_lon, max_lon = self.longitude - delta_lon, self.longitude + delta_lon
        if min_lon < -180 or max_lon > 180:
            return whole_circle
        return min_lat, max_lat, min_lon, max_lon
