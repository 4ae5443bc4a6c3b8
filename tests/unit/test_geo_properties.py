"""Properties of geo validation and distance."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidLocation
from domain.geo import EARTH_RADIUS_KM, GeoPoint, chord_for_km

latitudes = st.floats(-90, 90)
longitudes = st.floats(-180, 180)
points = st.builds(GeoPoint, latitudes, longitudes)


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))
def test_a_point_exists_exactly_when_both_coordinates_are_finite_and_in_range(lat, lon):
    valid = math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180
    if valid:
        assert GeoPoint(lat, lon).latitude == lat
    else:
        with pytest.raises(InvalidLocation) as caught:
            GeoPoint(lat, lon)
        assert caught.value.field in ("latitude", "longitude")


@given(points, points)
def test_distance_is_symmetric_non_negative_and_at_most_half_the_circumference(a, b):
    d = a.distance_km(b)
    assert d == pytest.approx(b.distance_km(a), abs=1e-6)
    assert 0 <= d <= math.pi * EARTH_RADIUS_KM + 1e-6


@given(points)
def test_distance_to_itself_is_zero(a):
    assert a.distance_km(a) == pytest.approx(0, abs=1e-6)


@given(points, points, points)
def test_triangle_inequality(a, b, c):
    assert a.distance_km(c) <= a.distance_km(b) + b.distance_km(c) + 1e-6


def destination(start: GeoPoint, bearing_deg: float, distance_km: float) -> GeoPoint:
    """The point reached from ``start`` along a great circle (the standard direct formula)."""
    lat1, lon1, theta = math.radians(start.latitude), math.radians(start.longitude), math.radians(bearing_deg)
    delta = distance_km / EARTH_RADIUS_KM
    lat2 = math.asin(math.sin(lat1) * math.cos(delta) + math.cos(lat1) * math.sin(delta) * math.cos(theta))
    lon2 = lon1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(lat1), math.cos(delta) - math.sin(lat1) * math.sin(lat2)
    )
    lon = (math.degrees(lon2) + 540) % 360 - 180
    return GeoPoint(max(-90.0, min(90.0, math.degrees(lat2))), lon)


def chord(a: GeoPoint, b: GeoPoint) -> float:
    return math.dist(a.unit_vector(), b.unit_vector())


@given(points, points, points)
def test_the_chord_orders_points_as_the_great_circle_does(centre, a, b):
    """What makes the spatial index exact: nearer by chord is nearer along the surface."""
    by_surface = centre.distance_km(a) - centre.distance_km(b)
    by_chord = chord(centre, a) - chord(centre, b)
    if abs(by_surface) > 1e-6:
        assert (by_surface > 0) == (by_chord > 0)


@given(points, st.floats(0, 360), st.floats(0.001, 20_000))
def test_the_chord_for_a_distance_is_the_chord_of_a_point_that_far(centre, bearing, distance):
    other = destination(centre, bearing, distance)
    assert chord_for_km(centre.distance_km(other)) == pytest.approx(chord(centre, other), abs=1e-9)


def test_booleans_and_strings_are_not_coordinates():
    for bad in (True, "12.3", None):
        with pytest.raises(InvalidLocation):
            GeoPoint(bad, 0)  # type: ignore[arg-type]


def test_one_degree_of_latitude_is_about_111_km():
    assert GeoPoint(0, 0).distance_km(GeoPoint(1, 0)) == pytest.approx(111.19, abs=0.01)
