"""People who use the service: seekers assign work, providers do it, operators watch delivery."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from domain.errors import NotAProvider, RoleLocked
from domain.geo import GeoPoint
from domain.preferences import NotificationPreferences
from domain.text import check_text

NAME_MAX = 150
MOBILE_MAX = 32
EXTERNAL_ID_MAX = 128


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
    external_id: str | None = None  # who the app's tokens say this is; the numeric id for profiles made here
    deleted_at: datetime | None = None
    preferences: NotificationPreferences = field(default_factory=NotificationPreferences)

    @classmethod
    def register(cls, role: Role, name: str, mobile: str, *, active: bool = False) -> Profile:
        name, mobile = name.strip(), mobile.strip()
        check_text("name", name, NAME_MAX)
        check_text("mobile", mobile, MOBILE_MAX, required=False)
        if active and role is not Role.PROVIDER:
            raise NotAProvider("only providers can be active for work")
        return cls(role=role, name=name, mobile=mobile, is_active_for_work=active)

    def update(self, role: Role, name: str, mobile: str, has_open_orders: bool) -> None:
        """The app's backend says who this user is now. A role cannot change under open orders."""
        fresh = Profile.register(role, name, mobile, active=self.is_active_for_work and role is Role.PROVIDER)
        if role is not self.role and has_open_orders:
            raise RoleLocked(f"this {self.role.value} has open work orders: the role cannot change now")
        self.role, self.name, self.mobile = fresh.role, fresh.name, fresh.mobile
        if role is not Role.PROVIDER:
            self.is_active_for_work = False

    def erase(self, at: datetime) -> None:
        """Forget the person (name, mobile, location, the identity tokens name); the row stays for history."""
        self.name, self.mobile = "", ""
        self.location, self.location_updated_at = None, None
        self.is_active_for_work = False
        self.external_id = None
        self.deleted_at = at

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


def check_external_id(value: str, field: str = "external_id") -> str:
    """An external id as the app's auth names it: 1-128 characters, no control characters, kept exactly as given
    (no case folding or Unicode normalisation, which could make two subjects one)."""
    check_text(field, value, EXTERNAL_ID_MAX)
    return value
