"""The profiles a process remembers: the most recently used, up to a capacity (REMEMBERED_PROFILES)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from application.remembered_profiles import RememberedProfiles
from domain.profiles import Profile, Role


def a_profile(profile_id: int) -> Profile:
    profile = Profile.register(Role.PROVIDER, f"Provider {profile_id}", "9876543210")
    profile.id = profile_id
    return profile


def test_the_least_recently_used_goes_first_and_a_capacity_of_zero_remembers_none():
    remembered = RememberedProfiles(capacity=2)
    remembered.remember([a_profile(1), a_profile(2)])
    assert remembered.get(1) is not None  # 1 is now the most recently used
    remembered.remember([a_profile(3)])
    assert (remembered.get(1) is not None, remembered.get(2), remembered.get(3) is not None) == (True, None, True)
    nothing = RememberedProfiles(capacity=0)
    nothing.remember([a_profile(1)])
    assert len(nothing) == 0 and nothing.get(1) is None


@given(st.integers(min_value=0, max_value=5), st.lists(st.integers(min_value=1, max_value=8), max_size=40))
def test_never_more_than_the_capacity_and_always_the_latest(capacity, uses):
    remembered = RememberedProfiles(capacity=capacity)
    for profile_id in uses:
        if remembered.get(profile_id) is None:
            remembered.remember([a_profile(profile_id)])
        assert len(remembered) <= capacity
    latest = list(dict.fromkeys(reversed(uses)))[:capacity]
    assert all(remembered.get(profile_id) is not None for profile_id in latest)
