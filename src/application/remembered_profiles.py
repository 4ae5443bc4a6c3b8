"""Profiles as this process last read them, so that a use case can decide without reading them again.

Nothing here is trusted on its own: a write that relies on a remembered profile checks in the same statement
that the profile still reads the same (``WorkOrderRepository.add_assignment_if_current``), and when it does not,
the use case reads afresh. So a stale entry costs one more round trip, never a wrong decision, and several
instances need no shared cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import replace

from domain.profiles import Profile

# ~0.8 KB each (tracemalloc): 40 MB at most, beside ~1 GB for as many open sockets. The connect of each socket
# remembers its user, so an instance holding more sockets than this reads a provider again before its first order.
DEFAULT_CAPACITY = 50_000


class RememberedProfiles:
    """A bounded map of profile id -> Profile, the least recently used dropped first. The profiles are the caller's
    to read, never to change."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._profiles: OrderedDict[int, Profile] = OrderedDict()

    def get(self, profile_id: int) -> Profile | None:
        profile = self._profiles.get(profile_id)
        if profile is not None:
            self._profiles.move_to_end(profile_id)
        return profile

    def remember(self, profiles: Iterable[Profile]) -> None:
        for profile in profiles:
            assert profile.id is not None, "only stored profiles are remembered"
            self._profiles[profile.id] = profile
            self._profiles.move_to_end(profile.id)
        while len(self._profiles) > self._capacity:
            self._profiles.popitem(last=False)

    def forget(self, *profile_ids: int) -> None:
        for profile_id in profile_ids:
            self._profiles.pop(profile_id, None)

    def __len__(self) -> int:
        return len(self._profiles)


def reads_the_same(given: Profile, stored: Profile) -> bool:
    """Whether a stored profile still says what a decision read from ``given``: every field but the location, which
    live location changes every few seconds and which no decision on a remembered profile reads."""
    return replace(given, location=None, location_updated_at=None) == replace(
        stored, location=None, location_updated_at=None
    )
