"""Quiet hours read on the user's wall clock, across DST changes; what each preference does to a push."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.notifications import NotificationKind
from domain.preferences import NotificationPreferences, PushMode, QuietHours

# Zones with DST (north and south, a 30-minute one) and without.
ZONES = ["Europe/Madrid", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "America/Santiago",
         "Asia/Kolkata", "Pacific/Chatham", "Etc/UTC"]  # fmt: skip
clock_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59]))


def in_window(local: time, start: time, end: time) -> bool:
    return start <= local < end if start < end else (local >= start or local < end)


@given(
    st.sampled_from(ZONES),
    st.datetimes(datetime(2020, 1, 1), datetime(2035, 12, 31)).map(lambda d: d.replace(tzinfo=UTC)),
    clock_times,
    clock_times,
)
def test_quiet_hours_follow_the_wall_clock_whatever_the_offset(zone, moment, start, end):
    if start == end:
        return
    quiet = QuietHours(start, end, zone)
    # The wall clock from the zone's offset at that instant (not a conversion of the local time back).
    offset = ZoneInfo(zone).utcoffset(moment.astimezone(ZoneInfo(zone)))
    wall = (moment + offset).replace(tzinfo=None).time()
    assert quiet.cover(moment) == in_window(wall, start, end)


def madrid(y, m, d, hh, mm, fold=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ZoneInfo("Europe/Madrid"), fold=fold)


def test_a_night_window_moves_with_the_clocks_in_autumn():
    night = QuietHours(time(22), time(7), "Europe/Madrid")
    # Summer time: 07:00 local is 05:00 UTC; winter time (from 25 October 2026): 06:00 UTC.
    assert not night.cover(datetime(2026, 10, 24, 5, 0, tzinfo=UTC))
    assert night.cover(datetime(2026, 10, 25, 5, 30, tzinfo=UTC))
    assert not night.cover(datetime(2026, 10, 25, 6, 0, tzinfo=UTC))


def test_the_repeated_hour_is_quiet_both_times_and_the_skipped_hour_never_happens():
    repeated = QuietHours(time(2), time(3), "Europe/Madrid")
    assert repeated.cover(madrid(2026, 10, 25, 2, 30, fold=0)) and repeated.cover(madrid(2026, 10, 25, 2, 30, fold=1))
    skipped = QuietHours(time(2), time(3), "Europe/Madrid")  # 29 March 2026: 02:00 -> 03:00
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert not any(skipped.cover(start + timedelta(minutes=m)) for m in range(0, 180))


def test_what_each_preference_does():
    now = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    quiet = NotificationPreferences(quiet_hours=QuietHours(time(22), time(7), "Etc/UTC"))
    assert quiet.push_mode(NotificationKind.WORK_ACCEPTED, critical=False, now=now) is PushMode.SILENT
    assert quiet.push_mode(NotificationKind.WORK_ASSIGNED, critical=True, now=now) is PushMode.ALERT
    muted = NotificationPreferences.build({"work_accepted": False, "work_assigned": False}, None)
    assert muted.push_mode(NotificationKind.WORK_ACCEPTED, critical=False, now=now) is PushMode.OFF
    assert muted.push_mode(NotificationKind.WORK_ASSIGNED, critical=True, now=now) is PushMode.ALERT
    assert NotificationPreferences().push_mode(NotificationKind.WORK_TAKEN, critical=False, now=now) is PushMode.ALERT
    assert NotificationPreferences.from_record(muted.to_record()) == muted
    assert NotificationPreferences.from_record(quiet.to_record()) == quiet


@pytest.mark.parametrize(
    ("push", "quiet", "field"),
    [
        ({"nope": True}, None, "push.nope"),
        ({}, ("7:00", "08:00", "Etc/UTC"), "quiet_hours.start"),
        ({}, ("07:00", "08:60", "Etc/UTC"), "quiet_hours.end"),
        ({}, ("07:00", "07:00", "Etc/UTC"), "quiet_hours.end"),
        ({}, ("07:00", "08:00", "Nowhere/Atlantis"), "quiet_hours.timezone"),
        ({}, ("07:00", "08:00", "/etc/localtime"), "quiet_hours.timezone"),
        ({}, ("\u0660\u0667:00", "08:00", "Etc/UTC"), "quiet_hours.start"),  # Arabic-Indic digits
    ],
)
def test_bad_preferences_name_the_field(push, quiet, field):
    with pytest.raises(InvalidInput) as refused:
        NotificationPreferences.build(push, quiet)
    assert refused.value.field == field
