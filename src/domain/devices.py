"""Devices a user receives pushes on."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from domain.errors import InvalidInput
from domain.text import check_text

TOKEN_MAX = 1024  # FCM tokens are ~160-200 characters; 1024 keeps the unique index within btree limits
PLATFORM_MAX = 32


class AddressKind(enum.StrEnum):
    """How FCM addresses the device: a registration token (what the seed app sends) or an installation id."""

    REGISTRATION_TOKEN = "token"
    INSTALLATION_ID = "fid"


@dataclass
class DeviceToken:
    """One device of one user. Invalidating keeps the history; the device simply stops receiving pushes."""

    user_id: int
    token: str
    kind: AddressKind
    platform: str
    registered_at: datetime
    invalidated_at: datetime | None = None
    invalid_reason: str | None = None
    id: int | None = None

    @classmethod
    def register(
        cls,
        user_id: int,
        token: str,
        platform: str | None,
        at: datetime,
        kind: AddressKind = AddressKind.REGISTRATION_TOKEN,
    ) -> DeviceToken:
        token = token.strip()
        if not token or len(token) > TOKEN_MAX or any(c.isspace() for c in token):
            raise InvalidInput(f"token must be 1 to {TOKEN_MAX} characters without spaces", field=_field_of(kind))
        check_text(_field_of(kind), token, TOKEN_MAX)
        platform = (platform or "unknown").strip().lower() or "unknown"
        check_text("platform", platform, PLATFORM_MAX)
        return cls(user_id=user_id, token=token, kind=kind, platform=platform, registered_at=at)

    @property
    def is_active(self) -> bool:
        return self.invalidated_at is None

    def invalidate(self, reason: str, at: datetime) -> None:
        if self.is_active:
            self.invalidated_at = at
            self.invalid_reason = reason

    def reregister(self, user_id: int, platform: str, at: datetime) -> None:
        """The same device registered again (maybe after a logout and login as someone else): it is live again."""
        self.user_id = user_id
        self.platform = platform
        self.registered_at = at
        self.invalidated_at = None
        self.invalid_reason = None


def _field_of(kind: AddressKind) -> str:
    return "fid" if kind is AddressKind.INSTALLATION_ID else "fcm_token"
