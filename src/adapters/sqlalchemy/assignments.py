"""The statements that assign work: one round trip when the parties are remembered, else two (issue 17).

The read brings the parties with their active devices, the seeker's pending count and the new order's id
(PostgreSQL: ``nextval``, so the write needs nothing back from an earlier insert). On PostgreSQL the write is
one statement (``ADD_ASSIGNMENT_IF_CURRENT``): it saves the order and its notification by data-modifying CTEs
only if both parties still read as the use case saw them and the seeker has room, returns the recipient's
devices, and reserves a spare order id. Atomic on its own, it runs without BEGIN/COMMIT in a single-write unit
of work; with a spare id and remembered parties an assignment needs no read at all. SQLite has no
data-modifying CTEs; its unit of work always holds the one writer's lock (BEGIN IMMEDIATE), under which
``max(id) + 1`` is free, the parties read in it cannot change, and the two inserts are one transaction.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Integer, and_, bindparam, cast, exists, func, insert, literal_column, or_, select, true
from sqlalchemy.dialects.postgresql import JSONB

from adapters.sqlalchemy.tables import device_tokens, notifications, profiles, work_orders
from domain.work_orders import WorkStatus

# The serial's sequence, as PostgreSQL names it (migration 0001 created the table).
ORDER_ID_SEQUENCE = "work_orders_id_seq"


def read_for_assignment(dialect: str, people_with_devices: Any) -> Any:
    """One row per party and device (at least one row), each also carrying ``order_id`` and ``seeker_pending``.
    Binds: ``ids`` (the parties), ``seeker_id``, ``now``, ``cap``."""
    if dialect == "postgresql":
        next_id = func.nextval(ORDER_ID_SEQUENCE)
    else:
        next_id = select(func.coalesce(func.max(work_orders.c.id), 0) + 1).scalar_subquery()
    # A CTE, so the id is taken once whatever the join does (PostgreSQL never inlines a volatile CTE).
    reserved = select(next_id.label("order_id")).cte("reserved")
    pending = (
        select(literal_column("1"))
        .where(
            work_orders.c.seeker_id == bindparam("seeker_id"),
            work_orders.c.status == WorkStatus.PENDING.value,
            work_orders.c.expires_at > bindparam("now", type_=work_orders.c.expires_at.type),
        )
        .limit(bindparam("cap"))
        .subquery()
    )
    people = people_with_devices.order_by(None).subquery("people")
    # An outer join from the one reserved row: the id and the count come back even when nobody is found.
    return (
        select(
            reserved.c.order_id,
            select(func.count()).select_from(pending).scalar_subquery().label("seeker_pending"),
            *people.c,
        )
        .select_from(reserved.outerjoin(people, true()))
        .order_by(people.c.id, people.c.device_registered_at, people.c.device_id)
    )


# The fields of a profile the conditional write compares: all but the location (``reads_the_same``).
COMPARED_FIELDS = ("role", "name", "mobile", "is_active_for_work", "external_id", "deleted_at")
NO_PREFERENCES = literal_column("'null'::jsonb")


def _reads_as_given(prefix: str) -> Any:
    """EXISTS: the profile ``:{prefix}id`` still has the given fields (binds ``{prefix}<column>``)."""
    profile = profiles.alias(prefix.rstrip("_"))

    def given(name: str) -> Any:
        return bindparam(f"{prefix}{name}", type_=profiles.c[name].type)

    preferences = func.coalesce(cast(profile.c.notification_preferences, JSONB), NO_PREFERENCES)
    given_preferences = func.coalesce(cast(given("notification_preferences"), JSONB), NO_PREFERENCES)
    return exists().where(
        profile.c.id == given("id"),
        *(profile.c[name].is_not_distinct_from(given(name)) for name in COMPARED_FIELDS),
        preferences == given_preferences,
    )


def _has_room() -> Any:
    """The seeker (``:o_seeker_id``) holds fewer than ``:cap`` unanswered orders at ``:o_created_at`` (0: no cap)."""
    cap = bindparam("cap", type_=Integer)
    pending = (
        select(literal_column("1"))
        .where(
            work_orders.c.seeker_id == bindparam("o_seeker_id"),
            work_orders.c.status == literal_column(f"'{WorkStatus.PENDING.value}'"),
            work_orders.c.expires_at > bindparam("o_created_at", type_=work_orders.c.expires_at.type),
        )
        .limit(cap)
        .subquery()
    )
    return or_(cap == literal_column("0"), select(func.count()).select_from(pending).scalar_subquery() < cap)


def _add_if_current() -> Any:
    """PostgreSQL, one statement: the order (binds ``o_<column>``, its id reserved) if both parties (binds ``s_``,
    ``p_``) read as given and the seeker has room; its notification (binds ``n_``) if the order was saved; a spare
    order id for a later assignment; and the recipient's active devices. At least one row: ``notification_id`` is
    NULL when nothing was saved."""
    order_columns = [c.name for c in work_orders.c]
    new_order = (
        insert(work_orders)
        .from_select(
            order_columns,
            select(*(bindparam(f"o_{name}", type_=work_orders.c[name].type) for name in order_columns)).where(
                _reads_as_given("s_"), _reads_as_given("p_"), _has_room()
            ),
        )
        .returning(work_orders.c.id)
        .cte("new_order")
    )
    notification_columns = [c.name for c in notifications.c if c.name not in ("id", "work_id")]
    new_notification = (
        insert(notifications)
        .from_select(
            [*notification_columns, "work_id"],
            select(
                *(bindparam(f"n_{name}", type_=notifications.c[name].type) for name in notification_columns),
                new_order.c.id,
            ),
        )
        .returning(notifications.c.id, notifications.c.recipient_id)
        .cte("new_notification")
    )
    # A CTE read once: one id however many devices join (PostgreSQL never inlines a volatile CTE).
    spare = select(func.nextval(literal_column(f"'{ORDER_ID_SEQUENCE}'")).label("spare_order_id")).cte("spare")
    active_devices = and_(
        device_tokens.c.user_id == new_notification.c.recipient_id, device_tokens.c.invalidated_at.is_(None)
    )
    return (
        select(
            spare.c.spare_order_id,
            new_notification.c.id.label("notification_id"),
            *(c.label(f"device_{c.name}") for c in device_tokens.c),
        )
        .select_from(spare.outerjoin(new_notification, true()).outerjoin(device_tokens, active_devices))
        .order_by(device_tokens.c.registered_at, device_tokens.c.id)
    )


ADD_ASSIGNMENT_IF_CURRENT = _add_if_current()


def party_binds(prefix: str, given: dict[str, Any]) -> dict[str, Any]:
    """The binds of ``_reads_as_given(prefix)`` from a profile's stored columns (``_saved_columns``)."""
    return {f"{prefix}{name}": given[name] for name in ("id", *COMPARED_FIELDS, "notification_preferences")}


class ReservedOrderIds:
    """Order ids the sequence gave this process's earlier assignment writes (one spare each), so that the next
    assignment needs no read to learn its id.

    Ids are taken oldest first and dropped after ``MAX_AGE_SECONDS``: an id stands for when its order was made, and
    one held for long would sort a new order among old ones (``ORDER BY id`` pages). Dropped ids are gaps, as a
    rolled back insert leaves. Held per engine: every unit of work of a process shares its engine's ids.
    """

    MAX_AGE_SECONDS = 1.0
    MAX_HELD = 256

    def __init__(self) -> None:
        self._ids: deque[tuple[int, float]] = deque()

    def take(self) -> int | None:
        now = time.monotonic()
        while self._ids:
            order_id, reserved_at = self._ids.popleft()
            if now - reserved_at <= self.MAX_AGE_SECONDS:
                return order_id
        return None

    def put(self, order_id: int) -> None:
        if len(self._ids) < self.MAX_HELD:
            self._ids.append((order_id, time.monotonic()))


_reserved: WeakKeyDictionary[Any, ReservedOrderIds] = WeakKeyDictionary()


def reserved_ids_of(engine: Any) -> ReservedOrderIds:
    """The reservations of this (sync) engine, made on first use."""
    found = _reserved.get(engine)
    if found is None:
        found = _reserved[engine] = ReservedOrderIds()
    return found
