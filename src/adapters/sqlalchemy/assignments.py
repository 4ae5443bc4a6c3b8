"""The statements that assign work in two round trips: one read, one write (issue 17).

The read brings the parties with their active devices, the seeker's pending count and the new order's id
(PostgreSQL: ``nextval``, so the write needs nothing back from an earlier insert). On PostgreSQL the write is
one statement, the order inserted by a data-modifying CTE beside its notification: atomic on its own, so it
runs without BEGIN/COMMIT in a single-write unit of work. SQLite has no data-modifying CTEs; its unit of work
always holds the one writer's lock (BEGIN IMMEDIATE), under which ``max(id) + 1`` is free and the two
inserts are one transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, func, insert, literal_column, select, true

from adapters.sqlalchemy.tables import notifications, work_orders
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


def _insert_with_binds(table: Table, prefix: str, without: tuple[str, ...] = ()) -> Any:
    """INSERT of every column but ``without``, each value a bind named ``prefix`` + column name."""
    binds = {c.name: bindparam(f"{prefix}{c.name}", type_=c.type) for c in table.c if c.name not in without}
    return insert(table).values(binds)


# PostgreSQL: the order (with its reserved id) and its notification in one statement, returning the
# notification's id. (SQLite runs the repositories' own two INSERTs in its transaction.)
INSERT_ORDER_AND_NOTIFICATION = (
    _insert_with_binds(notifications, "n_", without=("id",))
    .add_cte(_insert_with_binds(work_orders, "o_").returning(work_orders.c.id).cte("new_order"))
    .returning(notifications.c.id)
)
