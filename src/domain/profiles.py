"""People who use the service: seekers assign work, providers do it, operators watch delivery."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from domain.errors import NotAProvider
from domain.geo import GeoPoint
from domain.text import check_text

NAME_MAX = 150
MOBILE_MAX = 32


class Role(enum.StrEnum):
    SEEKER = "seeker"
    PROVIDER = "provider"
    OPERATOR = "operator"


@dataclass
class Profile:
    """A user of the service. ``id`` is given by the profile store when the profile is first saved."""

    role: Role
    name: str
    mobile: str
    is_active_for_work: bool = False
    location: GeoPoint | None = None
    location_updated_at: datetime | None = None
    id: int | None = None

    @classmethod
    def register(cls, role: Role, name: str, mobile: str, *, active: bool = False) -> Profile:
        name, mobile = name.strip(), mobile.strip()
        check_text("name", name, NAME_MAX)
        check_text("mobile", mobile, MOBILE_MAX)
        if active and role is not Role.PROVIDER:
            raise NotAProvider("only providers can be active for work")
        return cls(role=role, name=name, mobile=mobile, is_active_for_work=active)

    @property
    def is_provider(self) -> bool:
        return self.role is Role.PROVIDER

    @property
    def is_seeker(self) -> bool:
        return self.role is Role.SEEKER

    def set_availability(self, active: bool, location: GeoPoint | None, at: datetime) -> None:
        """A provider goes on or off duty, optionally telling where they are now."""
        if not self.is_provider:
            raise NotAProvider("only providers can change their availability")
        self.is_active_for_work = active
        if location is not None:
            self.location = location
            self.location_updated_at = at
