"""What a user wants pushed, and when pushes must be quiet.

Per notification kind, whether to push at all; and quiet hours (local wall-clock times in an IANA
time zone) during which pushes go out *silent*: delivered to the app, no sound, no alert. One kind is
critical and ignores both: a job offer to a provider who is active for work (being active is asking
for offers; muting them would make "active" a lie to every seeker).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import InvalidInput
from domain.notifications import NotificationKind


class PushMode(enum.StrEnum):
    ALERT = "alert"  # the usual push: title, body, sound
    SILENT = "silent"  # data only (Android) / content-available (APNs): the app hears, the user is not woken
    OFF = "off"  # no push: the user turned this kind off (the socket and history still have it)


def parse_clock(text: str, field_name: str) -> time:
    """'HH:MM' (24 h) as a time; anything else is refused naming the field."""
    hours, sep, minutes = text.partition(":")
    if not (sep and len(hours) == 2 and len(minutes) == 2 and hours.isascii() and minutes.isascii()):
        raise InvalidInput("a local time as HH:MM (24 h), e.g. 22:00", field=field_name)
    if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
        raise InvalidInput("a local time as HH:MM (24 h), e.g. 22:00", field=field_name)
    return time(int(hours), int(minutes))


def zone(name: str, field_name: str) -> ZoneInfo:
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise InvalidInput("an IANA time zone name, e.g. Europe/Madrid", field=field_name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {name!r}: use an IANA name, e.g. Europe/Madrid", field=field_name
        ) from None


@dataclass(frozen=True)
class QuietHours:
    """From ``start`` to ``end`` local time every day; ``start`` after ``end`` spans midnight (22:00-07:00)."""

    start: time
    end: time
    timezone: str

    def __post_init__(self) -> None:
        zone(self.timezone, "quiet_hours.timezone")
        if self.start == self.end:
            raise InvalidInput("quiet hours must not start and end at the same time", field="quiet_hours.end")

    def cover(self, moment: datetime) -> bool:
        """Whether ``moment`` (any aware datetime) falls in the window, read on the user's wall clock.

        The conversion goes through the zone's rules for that very instant, so DST changes need nothing
        special: in the hour that repeats in autumn both instants read 01:30, in the hour skipped in spring
        no instant reads 02:30."""
        local = moment.astimezone(ZoneInfo(self.timezone)).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True)
class NotificationPreferences:
    """Defaults: every kind pushed, no quiet hours."""

    muted: frozenset[NotificationKind] = field(default_factory=frozenset)
    quiet_hours: QuietHours | None = None

    @classmethod
    def build(cls, push: dict[str, object], quiet_hours: tuple[str, str, str] | None) -> NotificationPreferences:
        """From what a user sends: ``push`` maps kind names to on/off (kinds left out stay on);
        ``quiet_hours`` is (start 'HH:MM', end 'HH:MM', IANA zone). Errors name the field."""
        muted = set()
        for full_name, wanted in push.items():
            name = full_name[:64]  # echoed in the error: bounded
            try:
                kind = NotificationKind(full_name)
            except ValueError:
                known = ", ".join(k.value for k in NotificationKind)
                raise InvalidInput(
                    f"unknown notification kind {name!r}; known: {known}", field=f"push.{name}"
                ) from None
            if not isinstance(wanted, bool):
                raise InvalidInput("true to push this kind, false not to", field=f"push.{name}")
            if not wanted:
                muted.add(kind)
        quiet = None
        if quiet_hours is not None:
            start, end, timezone = quiet_hours
            quiet = QuietHours(parse_clock(start, "quiet_hours.start"), parse_clock(end, "quiet_hours.end"), timezone)
        return cls(frozenset(muted), quiet)

    def pushes(self) -> dict[str, bool]:
        return {kind.value: kind not in self.muted for kind in NotificationKind}

    @property
    def is_customised(self) -> bool:
        return bool(self.muted) or self.quiet_hours is not None

    def push_mode(self, kind: NotificationKind, critical: bool, now: datetime) -> PushMode:
        if critical:
            return PushMode.ALERT
        if kind in self.muted:
            return PushMode.OFF
        if self.quiet_hours is not None and self.quiet_hours.cover(now):
            return PushMode.SILENT
        return PushMode.ALERT

    def to_record(self) -> dict:
        """A JSON-able form for the store."""
        quiet = self.quiet_hours
        return {
            "muted": sorted(k.value for k in self.muted),
            "quiet_hours": None
            if quiet is None
            else {
                "start": quiet.start.strftime("%H:%M"),
                "end": quiet.end.strftime("%H:%M"),
                "timezone": quiet.timezone,
            },
        }

    @classmethod
    def from_record(cls, record: dict | None) -> NotificationPreferences:
        if not record:
            return cls()
        quiet = record.get("quiet_hours")
        return cls(
            muted=frozenset(NotificationKind(k) for k in record.get("muted", ())),
            quiet_hours=None
            if quiet is None
            else QuietHours(time.fromisoformat(quiet["start"]), time.fromisoformat(quiet["end"]), quiet["timezone"]),
        )
