"""GET/PUT /api/1/profiles/notification-preferences/: what the caller wants pushed, and quiet hours."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import Meta, Struct

from application.use_cases.notification_preferences import (
    ChangeNotificationPreferences,
    ShowNotificationPreferences,
)
from domain.preferences import NotificationPreferences
from entrypoints.http.guards import authenticated, in_order
from entrypoints.http.limits import rate_limited
from entrypoints.http.schemas import Envelope, envelope, error_responses
from entrypoints.http.strict import canonical_numbers

CRITICAL = "a job offer (work_assigned) to a provider who is active for work is always pushed, loud"


class QuietHoursBody(Struct, kw_only=True, forbid_unknown_fields=True):
    start: Annotated[str, Meta(max_length=5, description="local time, HH:MM (24 h)")]
    end: Annotated[str, Meta(max_length=5, description="local time, HH:MM; before start: the window spans midnight")]
    timezone: Annotated[str, Meta(max_length=64, description="IANA time zone, e.g. Europe/Madrid")]


class NotificationPreferencesBody(Struct, kw_only=True, forbid_unknown_fields=True):
    # Values are checked by the domain, so that an error names the kind (msgspec would say "push[...]").
    push: Annotated[dict[str, Any], Meta(max_length=32, description="kind -> true/false (kinds left out: on)")] = {}
    quiet_hours: QuietHoursBody | None = None


class NotificationPreferencesData(Struct):
    push: dict[str, bool]
    quiet_hours: QuietHoursBody | None
    critical: str


def _data(preferences: NotificationPreferences) -> NotificationPreferencesData:
    record = preferences.to_record()["quiet_hours"]
    return NotificationPreferencesData(
        push=preferences.pushes(),
        quiet_hours=QuietHoursBody(**record) if record else None,
        critical=CRITICAL,
    )


class NotificationPreferencesController(Controller):
    path = "/api/1/profiles/notification-preferences"
    tags = ["profiles"]
    security = [{"BearerToken": []}]
    guards = [in_order(authenticated, rate_limited, canonical_numbers)]

    @get("/", operation_id="showNotificationPreferences", responses=error_responses(400, 401, 503))
    async def show(
        self,
        caller_id: NamedDependency[int],
        show_notification_preferences: NamedDependency[ShowNotificationPreferences],
    ) -> Envelope[NotificationPreferencesData]:
        """Which notification kinds the caller gets pushes for, and their quiet hours (default: all on, none)."""
        return envelope("Notification preferences", _data(await show_notification_preferences.execute(caller_id)))

    @put("/", operation_id="changeNotificationPreferences", responses=error_responses(400, 401, 413, 415, 422, 503))
    async def change(
        self,
        data: JSONBody[NotificationPreferencesBody],
        caller_id: NamedDependency[int],
        change_notification_preferences: NamedDependency[ChangeNotificationPreferences],
    ) -> Envelope[NotificationPreferencesData]:
        """Replace them. During quiet hours pushes of other kinds go silent (data only on Android,
        content-available on APNs); a kind turned off is not pushed at all (socket and history as usual)."""
        quiet = data.quiet_hours
        preferences = NotificationPreferences.build(
            data.push, (quiet.start, quiet.end, quiet.timezone) if quiet else None
        )
        return envelope(
            "Notification preferences saved",
            _data(await change_notification_preferences.execute(caller_id, preferences)),
        )
