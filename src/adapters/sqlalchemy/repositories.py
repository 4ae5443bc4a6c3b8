"""Repositories over SQLAlchemy Core, sharing the unit of work's connection."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    Row,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.geo.rows import position_columns
from adapters.sqlalchemy import assignments
from adapters.sqlalchemy.batches import delete_oldest
from adapters.sqlalchemy.driver import execute_many, fetch_all, insert_returning_id
from adapters.sqlalchemy.tables import (
    delivery_attempts,
    device_tokens,
    notifications,
    profiles,
    work_offers,
    work_orders,
)
from adapters.sqlalchemy.types import UtcDateTime
from application.errors import DuplicateExternalId
from application.ports import (
    AssignmentReads,
    DeliveryStats,
    DeviceTokenRepository,
    NotificationRepository,
    ProfileRepository,
    WorkOrderRepository,
)
from application.remembered_profiles import reads_the_same
from domain.devices import AddressKind, DeviceToken
from domain.geo import GeoPoint
from domain.notifications import Notification, NotificationKind, PushState, SocketState
from domain.preferences import NotificationPreferences
from domain.profiles import Profile, Role
from domain.work_orders import CLOSED_STATUSES, ERASED_PLACE, PERSONAL_PAYLOAD_KEYS, WorkOrder, WorkStatus


class _Repository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def _plan_each_time(self) -> None:
        """Bulk reads of a table that grows under them (an import) are planned per execution on PostgreSQL.

        psycopg prepares a statement after 5 executions and PostgreSQL may then keep a generic plan made
        while the table was small (a sequential scan): measured, each batch's lookup grew from 1 ms to
        200 ms over a 100,000-line import, 82 s in all instead of ~20 s.
        """
        if self._c.dialect.name == "postgresql":
            await self._c.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))

    @property
    def _locks_rows(self) -> bool:
        """SQLite has one writer at a time (BEGIN IMMEDIATE), so row locks are PostgreSQL's business."""
        return self._c.dialect.name == "postgresql"


def _one_of(column, dialect: str):
    """``column IN :ids`` that compiles once whatever the number of ids (an expanding IN is re-rendered
    for every execution): an array on PostgreSQL, a JSON list read by ``json_each`` on SQLite."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", type_=ARRAY(BigInteger)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam("ids", type_=JSON))))


def _per_dialect(build) -> dict[str, Any]:
    """Hot-path statements, built once per dialect so each execution is a compiled-cache hit."""
    return {dialect: build(dialect) for dialect in ("postgresql", "sqlite")}


# --- profiles --------------------------------------------------------------------------------------


def profile_from_row(row: Row) -> Profile:
    location = GeoPoint(row.latitude, row.longitude) if row.latitude is not None else None
    return Profile(
        id=row.id,
        role=Role(row.role),
        name=row.name,
        mobile=row.mobile,
        is_active_for_work=row.is_active_for_work,
        location=location,
        location_updated_at=row.location_updated_at,
        external_id=row.external_id,
        deleted_at=row.deleted_at,
        preferences=NotificationPreferences.from_record(row.notification_preferences),
    )


# What a state change needs: the parties and their active devices, in one read.
PEOPLE_WITH_DEVICES = _per_dialect(
    lambda dialect: (
        select(profiles, *(c.label(f"device_{c.name}") for c in device_tokens.c))
        .outerjoin(
            device_tokens, and_(device_tokens.c.user_id == profiles.c.id, device_tokens.c.invalidated_at.is_(None))
        )
        .where(_one_of(profiles.c.id, dialect))
        .order_by(profiles.c.id, device_tokens.c.registered_at, device_tokens.c.id)
    )
)


READ_FOR_ASSIGNMENT = _per_dialect(
    lambda dialect: assignments.read_for_assignment(dialect, PEOPLE_WITH_DEVICES[dialect])
)


def _people_and_devices(rows: Iterable[Any]) -> tuple[dict[int, Profile], dict[int, list[DeviceToken]]]:
    """Profiles and their devices from PEOPLE_WITH_DEVICES rows."""
    people: dict[int, Profile] = {}
    devices: dict[int, list[DeviceToken]] = {}
    for row in rows:
        if row.id not in people:
            people[row.id] = profile_from_row(row)
        if row.device_id is not None:
            devices.setdefault(row.id, []).append(row_to_device(row, prefix="device_"))
    return people, devices


EXISTING_PROFILE_IDS = _per_dialect(
    lambda dialect: select(profiles.c.id).where(_one_of(profiles.c.id, dialect), profiles.c.deleted_at.is_(None))
)
# One profile by id or by external id: each request's caller and each socket's connect read one (driver.py).
PROFILE_BY_ID = select(profiles).where(profiles.c.id == bindparam("id"), profiles.c.deleted_at.is_(None))
PROFILE_BY_EXTERNAL_ID = select(profiles).where(
    profiles.c.external_id == bindparam("external_id"), profiles.c.deleted_at.is_(None)
)
OPEN_STATUSES = (WorkStatus.PENDING.value, WorkStatus.ACCEPTED.value)


def _profile_columns(profile: Profile) -> dict[str, Any]:
    return {
        "role": profile.role.value,
        "name": profile.name,
        "mobile": profile.mobile,
        "is_active_for_work": profile.is_active_for_work,
        "location_updated_at": profile.location_updated_at,
        **position_columns(profile.location),
        "notification_preferences": profile.preferences.to_record() if profile.preferences.is_customised else None,
    }


def _saved_columns(profile: Profile) -> dict[str, Any]:
    return {**_profile_columns(profile), "external_id": profile.external_id, "deleted_at": profile.deleted_at}


INSERT_PROFILES = insert(profiles).returning(profiles.c.id, sort_by_parameter_order=True)


def _update_many(table, columns: Iterable[str]):
    """``UPDATE table SET <each column> = :b_<column> WHERE id = :b_id``, for executemany."""
    values = {name: bindparam(f"b_{name}", type_=table.c[name].type) for name in columns}
    return update(table).where(table.c.id == bindparam("b_id")).values(values)


# The columns come from the same helper the single save uses, so the two cannot drift apart.
SAVE_PROFILE = _update_many(profiles, _saved_columns(Profile(Role.SEEKER, "", "")))


class SqlAlchemyProfileRepository(_Repository, ProfileRepository):
    async def add(self, profile: Profile) -> Profile:
        values = {**_profile_columns(profile), "external_id": profile.external_id}
        try:
            profile.id = (await self._c.execute(insert(profiles).values(values).returning(profiles.c.id))).scalar_one()
        except IntegrityError as error:
            raise DuplicateExternalId(profile.external_id or "") from error
        if profile.external_id is None:  # made here (the CLI): its tokens name its id
            profile.external_id = str(profile.id)
            await self._c.execute(
                update(profiles).where(profiles.c.id == profile.id).values(external_id=profile.external_id)
            )
        return profile

    async def get(self, profile_id: int) -> Profile | None:
        rows = await fetch_all(self._c, PROFILE_BY_ID, {"id": profile_id})
        return profile_from_row(rows[0]) if rows else None

    async def get_by_external_id(self, external_id: str) -> Profile | None:
        rows = await fetch_all(self._c, PROFILE_BY_EXTERNAL_ID, {"external_id": external_id})
        return profile_from_row(rows[0]) if rows else None

    async def add_many(self, new: Sequence[Profile]) -> None:
        if not new:
            return
        rows = [{**_profile_columns(p), "external_id": p.external_id} for p in new]
        try:
            ids = (await self._c.execute(INSERT_PROFILES, rows)).scalars().all()
        except IntegrityError as error:
            raise DuplicateExternalId("one of the batch") from error
        for profile, new_id in zip(new, ids, strict=True):
            profile.id = new_id

    async def save_many(self, changed: Sequence[Profile]) -> None:
        if changed:
            await self._c.execute(
                SAVE_PROFILE, [{"b_id": p.id, **{f"b_{k}": v for k, v in _saved_columns(p).items()}} for p in changed]
            )

    async def by_external_ids(self, external_ids: Collection[str]) -> dict[str, Profile]:
        if not external_ids:
            return {}
        await self._plan_each_time()
        query = select(profiles).where(profiles.c.external_id.in_(list(external_ids)), profiles.c.deleted_at.is_(None))
        return {row.external_id: profile_from_row(row) for row in await self._c.execute(query)}

    async def has_open_orders(self, profile_id: int) -> bool:
        query = select(work_orders.c.id).where(
            or_(work_orders.c.seeker_id == profile_id, work_orders.c.provider_id == profile_id),
            work_orders.c.status.in_(OPEN_STATUSES),
        )
        return (await self._c.execute(query.limit(1))).first() is not None

    async def get_many_with_devices(
        self, profile_ids: Collection[int]
    ) -> tuple[dict[int, Profile], dict[int, list[DeviceToken]]]:
        if not profile_ids:
            return {}, {}
        rows = await fetch_all(self._c, PEOPLE_WITH_DEVICES[self._c.dialect.name], {"ids": list(profile_ids)})
        return _people_and_devices(rows)

    async def existing_ids(self, profile_ids: Collection[int]) -> set[int]:
        if not profile_ids:
            return set()
        rows = await fetch_all(self._c, EXISTING_PROFILE_IDS[self._c.dialect.name], {"ids": list(profile_ids)})
        return {row.id for row in rows}

    async def erased_since(self, since: datetime) -> set[int]:
        rows = await self._c.execute(select(profiles.c.id).where(profiles.c.deleted_at >= since))
        return {row.id for row in rows}

    async def save(self, profile: Profile) -> None:
        await self._c.execute(update(profiles).where(profiles.c.id == profile.id).values(_saved_columns(profile)))

    async def list_active_providers(self, limit: int) -> list[Profile]:
        query = select(profiles).where(profiles.c.role == Role.PROVIDER.value, profiles.c.is_active_for_work)
        rows = await self._c.execute(query.order_by(profiles.c.id).limit(limit))
        return [profile_from_row(row) for row in rows]


# --- devices ---------------------------------------------------------------------------------------


def row_to_device(row: Any, prefix: str = "") -> DeviceToken:
    def column(name: str) -> Any:
        return getattr(row, f"{prefix}{name}")

    return DeviceToken(
        id=column("id"),
        user_id=column("user_id"),
        token=column("token"),
        kind=AddressKind(column("kind")),
        platform=column("platform"),
        registered_at=column("registered_at"),
        invalidated_at=column("invalidated_at"),
        invalid_reason=column("invalid_reason"),
    )


def _device_columns(device: DeviceToken) -> dict[str, Any]:
    return {
        "user_id": device.user_id,
        "token": device.token,
        "kind": device.kind.value,
        "platform": device.platform,
        "registered_at": device.registered_at,
        "invalidated_at": device.invalidated_at,
        "invalid_reason": device.invalid_reason,
    }


INSERT_DEVICES = insert(device_tokens).returning(device_tokens.c.id, sort_by_parameter_order=True)
SAVE_DEVICE = _update_many(
    device_tokens, _device_columns(DeviceToken(0, "", AddressKind.REGISTRATION_TOKEN, "", datetime.now(UTC)))
)

ACTIVE_DEVICES = _per_dialect(
    lambda dialect: (
        select(device_tokens)
        .where(_one_of(device_tokens.c.user_id, dialect), device_tokens.c.invalidated_at.is_(None))
        .order_by(device_tokens.c.registered_at, device_tokens.c.id)
    )
)


class SqlAlchemyDeviceTokenRepository(_Repository, DeviceTokenRepository):
    async def get_by_token(self, token: str) -> DeviceToken | None:
        row = (await self._c.execute(select(device_tokens).where(device_tokens.c.token == token))).first()
        return row_to_device(row) if row else None

    async def add(self, device: DeviceToken) -> DeviceToken:
        statement = insert(device_tokens).values(_device_columns(device)).returning(device_tokens.c.id)
        device.id = (await self._c.execute(statement)).scalar_one()
        return device

    async def save(self, device: DeviceToken) -> None:
        await self._c.execute(
            update(device_tokens).where(device_tokens.c.id == device.id).values(_device_columns(device))
        )

    async def by_tokens(self, tokens: Collection[str]) -> dict[str, DeviceToken]:
        if not tokens:
            return {}
        await self._plan_each_time()
        rows = await self._c.execute(select(device_tokens).where(device_tokens.c.token.in_(list(tokens))))
        return {row.token: row_to_device(row) for row in rows}

    async def add_many(self, new: Sequence[DeviceToken]) -> None:
        if new:
            ids = (await self._c.execute(INSERT_DEVICES, [_device_columns(d) for d in new])).scalars().all()
            for device, new_id in zip(new, ids, strict=True):
                device.id = new_id

    async def save_many(self, changed: Sequence[DeviceToken]) -> None:
        if changed:
            rows = [{"b_id": d.id, **{f"b_{k}": v for k, v in _device_columns(d).items()}} for d in changed]
            await self._c.execute(SAVE_DEVICE, rows)

    async def remove_for_user(self, user_id: int, token: str | None = None) -> int:
        statement = delete(device_tokens).where(device_tokens.c.user_id == user_id)
        if token is not None:
            statement = statement.where(device_tokens.c.token == token)
        return (await self._c.execute(statement)).rowcount

    async def active_for_users(self, user_ids: Collection[int]) -> dict[int, list[DeviceToken]]:
        if not user_ids:
            return {}
        rows = await self._c.execute(ACTIVE_DEVICES[self._c.dialect.name], {"ids": list(user_ids)})
        found: dict[int, list[DeviceToken]] = defaultdict(list)
        for row in rows:
            found[row.user_id].append(row_to_device(row))
        return dict(found)

    async def invalidate(self, reasons: Mapping[int, str], at: datetime) -> None:
        by_reason: dict[str, list[int]] = defaultdict(list)
        for device_id, reason in reasons.items():
            by_reason[reason].append(device_id)
        for reason, ids in by_reason.items():
            await self._c.execute(
                update(device_tokens)
                .where(device_tokens.c.id.in_(ids), device_tokens.c.invalidated_at.is_(None))
                .values(invalidated_at=at, invalid_reason=reason[:200])
            )


# --- work orders -----------------------------------------------------------------------------------


def row_to_order(row: Row) -> WorkOrder:
    return WorkOrder(
        id=row.id,
        seeker_id=row.seeker_id,
        provider_id=row.provider_id,
        service_type=row.service_type,
        message=row.message,
        distance=row.distance,
        location=GeoPoint(row.latitude, row.longitude),
        status=WorkStatus(row.status),
        created_at=row.created_at,
        expires_at=row.expires_at,
        responded_at=row.responded_at,
        closed_at=row.closed_at,
    )


OFFERS_OF = _per_dialect(
    lambda dialect: (
        select(work_offers).where(_one_of(work_offers.c.work_id, dialect)).order_by(work_offers.c.provider_id)
    )
)
INSERT_OFFERS = insert(work_offers)
SAVE_DECLINE = (
    update(work_offers)
    .where(
        work_offers.c.work_id == bindparam("b_work_id"),
        work_offers.c.provider_id == bindparam("b_provider_id"),
        work_offers.c.declined_at.is_(None),
    )
    .values(declined_at=bindparam("b_at", type_=UtcDateTime))
)


# Built once: statements passed their values as parameters compile once and stay cached.
INSERT_ORDER = insert(work_orders).returning(work_orders.c.id)
INSERT_NOTIFICATION = insert(notifications).returning(notifications.c.id)
INSERT_NOTIFICATIONS = insert(notifications).returning(notifications.c.id, sort_by_parameter_order=True)


def _order_columns(order: WorkOrder) -> dict[str, Any]:
    return {
        "seeker_id": order.seeker_id,
        "provider_id": order.provider_id,
        "service_type": order.service_type,
        "message": order.message,
        "distance": order.distance,
        "latitude": order.location.latitude,
        "longitude": order.location.longitude,
        "status": order.status.value,
        "created_at": order.created_at,
        "expires_at": order.expires_at,
        "responded_at": order.responded_at,
        "closed_at": order.closed_at,
        "broadcast": order.is_broadcast,
    }


class SqlAlchemyWorkOrderRepository(_Repository, WorkOrderRepository):
    def __init__(self, connection: AsyncConnection) -> None:
        super().__init__(connection)
        self._assignment_reads: dict[tuple[int, int, datetime, int], AssignmentReads] = {}

    async def add(self, order: WorkOrder) -> WorkOrder:
        values = _order_columns(order)
        order.id = await insert_returning_id(self._c, INSERT_ORDER, values)
        if order.is_broadcast:
            offers = [{"work_id": order.id, "provider_id": p, "declined_at": d} for p, d in order.offers.items()]
            await self._c.execute(INSERT_OFFERS, offers)
        return order

    async def read_for_assignment(
        self, seeker_id: int, provider_id: int, now: datetime, pending_cap: int
    ) -> AssignmentReads:
        values = {"ids": [seeker_id, provider_id], "seeker_id": seeker_id, "now": now, "cap": pending_cap}
        rows = await fetch_all(self._c, READ_FOR_ASSIGNMENT[self._c.dialect.name], values)
        people, devices = _people_and_devices(row for row in rows if row.id is not None)
        reads = AssignmentReads(people, devices, rows[0].seeker_pending, rows[0].order_id)
        self._assignment_reads = {(seeker_id, provider_id, now, pending_cap): reads}  # for SQLite's write under lock
        return reads

    def reserved_order_id(self) -> int | None:
        if self._c.dialect.name != "postgresql":
            return None  # SQLite's next id is only known under the writer's lock: read_for_assignment
        return assignments.reserved_ids_of(self._c.engine.sync_engine).take()

    async def add_assignment_if_current(
        self, order: WorkOrder, notification: Notification, seeker: Profile, provider: Profile, pending_cap: int
    ) -> list[DeviceToken] | None:
        assert order.id is not None and not order.is_broadcast, "an assignment has a reserved id and one provider"
        order_values = {**_order_columns(order), "id": order.id}
        if self._c.dialect.name != "postgresql":
            return await self._add_assignment_under_lock(order, notification, seeker, provider, pending_cap)
        values = {
            **{f"o_{k}": v for k, v in order_values.items()},
            **{f"n_{k}": v for k, v in _notification_columns(notification).items()},
            **assignments.party_binds("s_", {**_saved_columns(seeker), "id": seeker.id}),
            **assignments.party_binds("p_", {**_saved_columns(provider), "id": provider.id}),
            "cap": pending_cap,
        }
        rows = await fetch_all(self._c, assignments.ADD_ASSIGNMENT_IF_CURRENT, values)
        assignments.reserved_ids_of(self._c.engine.sync_engine).put(rows[0].spare_order_id)
        if rows[0].notification_id is None:
            return None
        notification.id = rows[0].notification_id
        return [row_to_device(row, prefix="device_") for row in rows if row.device_id is not None]

    async def _add_assignment_under_lock(
        self, order: WorkOrder, notification: Notification, seeker: Profile, provider: Profile, pending_cap: int
    ) -> list[DeviceToken] | None:
        """SQLite: this unit of work holds the one writer's lock (BEGIN IMMEDIATE), so what it read stays true until
        it commits: the assignment's read in it is reused (else made now), checked, then the two INSERTs."""
        key = (order.seeker_id, order.provider_id, order.created_at, pending_cap)
        reads = self._assignment_reads.get(key)
        if reads is None:
            reads = await self.read_for_assignment(*key)
        people = reads.people
        if not all(p.id in people and reads_the_same(p, people[p.id]) for p in (seeker, provider)):
            return None
        if pending_cap and reads.seeker_pending >= pending_cap:
            return None
        await insert_returning_id(self._c, INSERT_ORDER, {**_order_columns(order), "id": order.id})
        notification.id = await insert_returning_id(self._c, INSERT_NOTIFICATION, _notification_columns(notification))
        return reads.devices.get(notification.recipient_id, [])

    async def get(self, order_id: int, lock: bool = False) -> WorkOrder | None:
        query = select(work_orders).where(work_orders.c.id == order_id)
        if lock and self._locks_rows:
            query = query.with_for_update()
        row = (await self._c.execute(query)).first()
        if row is None:
            return None
        return (await self._with_offers([row]))[0]

    async def _with_offers(self, rows: Sequence[Row]) -> list[WorkOrder]:
        """Orders from rows, broadcasts with their offers (one read for all of them, none without broadcasts)."""
        orders = [row_to_order(row) for row in rows]
        broadcasts = {row.id: order for row, order in zip(rows, orders, strict=True) if row.broadcast}
        if broadcasts:
            for offer in await fetch_all(self._c, OFFERS_OF[self._c.dialect.name], {"ids": list(broadcasts)}):
                broadcasts[offer.work_id].offers[offer.provider_id] = offer.declined_at
        return orders

    async def save_declines(self, order: WorkOrder) -> None:
        declines = [
            {"b_work_id": order.id, "b_provider_id": p, "b_at": at} for p, at in order.offers.items() if at is not None
        ]
        await execute_many(self._c, SAVE_DECLINE, declines)

    async def save_transition(self, order: WorkOrder, from_status: WorkStatus) -> bool:
        # The WHERE on the old status is the guard: PostgreSQL re-checks it after waiting for a
        # concurrent writer of the row, so the second of two racing answers updates nothing.
        result = await self._c.execute(
            update(work_orders)
            .where(work_orders.c.id == order.id, work_orders.c.status == from_status.value)
            .values(
                status=order.status.value,
                provider_id=order.provider_id,
                responded_at=order.responded_at,
                closed_at=order.closed_at,
            )
        )
        return result.rowcount == 1

    async def list_for_user(
        self, user_id: int, role: Role, status: WorkStatus | None, limit: int, before_id: int | None
    ) -> list[WorkOrder]:
        owner = work_orders.c.seeker_id if role is Role.SEEKER else work_orders.c.provider_id
        query = select(work_orders).where(owner == user_id)
        if status is not None:
            query = query.where(work_orders.c.status == status.value)
        if before_id is not None:
            query = query.where(work_orders.c.id < before_id)
        rows = await self._c.execute(query.order_by(work_orders.c.id.desc()).limit(limit))
        return [row_to_order(row) for row in rows]

    async def anonymise_for_user(self, user_id: int) -> None:
        await self._c.execute(
            update(work_orders)
            .where(work_orders.c.seeker_id == user_id)
            .values(message="", latitude=ERASED_PLACE.latitude, longitude=ERASED_PLACE.longitude)
        )

    async def overdue(self, now: datetime, limit: int) -> list[WorkOrder]:
        query = (
            select(work_orders)
            .where(work_orders.c.status == WorkStatus.PENDING.value, work_orders.c.expires_at <= now)
            .order_by(work_orders.c.expires_at, work_orders.c.id)
            .limit(limit)
        )
        if self._locks_rows:
            query = query.with_for_update(skip_locked=True)
        return await self._with_offers((await self._c.execute(query)).all())

    async def delete_closed_before(self, cutoff: datetime, limit: int) -> int:
        closed = and_(work_orders.c.status.in_([s.value for s in CLOSED_STATUSES]), work_orders.c.closed_at < cutoff)
        # Their notifications (and those's attempts) go with them: ON DELETE CASCADE on both engines.
        return await delete_oldest(self._c, work_orders, closed, work_orders.c.id, limit)

    async def count_pending_for_seeker(self, seeker_id: int, now: datetime, up_to: int) -> int:
        pending = (
            select(literal_column("1"))
            .where(
                work_orders.c.seeker_id == seeker_id,
                work_orders.c.status == WorkStatus.PENDING.value,
                work_orders.c.expires_at > now,
            )
            .limit(up_to)
            .subquery()
        )
        return (await self._c.execute(select(func.count()).select_from(pending))).scalar_one()


# --- notifications ---------------------------------------------------------------------------------


def _notification(row: Row) -> Notification:
    return Notification(
        id=row.id,
        recipient_id=row.recipient_id,
        kind=NotificationKind(row.kind),
        work_id=row.work_id,
        payload=row.payload,
        created_at=row.created_at,
        push_state=PushState(row.push_state),
        push_message_id=row.push_message_id,
        push_error=row.push_error,
        socket_state=SocketState(row.socket_state),
        socket_error=row.socket_error,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        delivered_at=row.delivered_at,
        opened_at=row.opened_at,
        push_silent=row.push_silent,
    )


def _notification_columns(n: Notification) -> dict[str, Any]:
    return {
        "recipient_id": n.recipient_id,
        "kind": n.kind.value,
        "work_id": n.work_id,
        "payload": n.payload,
        "created_at": n.created_at,
        "push_silent": n.push_silent,
        **_delivery_columns(n),
    }


def _delivery_columns(n: Notification) -> dict[str, Any]:
    return {
        "push_state": n.push_state.value,
        "push_message_id": n.push_message_id,
        "push_error": n.push_error[:500] if n.push_error else None,
        "socket_state": n.socket_state.value,
        "socket_error": n.socket_error[:500] if n.socket_error else None,
        "attempts": n.attempts,
        "next_attempt_at": n.next_attempt_at,
        "last_attempt_at": n.last_attempt_at,
        "delivered_at": n.delivered_at,
        "opened_at": n.opened_at,
    }


# delivery_status, derived in SQL exactly as Notification.delivery_status derives it.
DELIVERY_STATUS = case(
    (notifications.c.delivered_at.is_not(None), "delivered"),
    (or_(notifications.c.push_state == "sent", notifications.c.socket_state == "sent"), "sent"),
    (or_(notifications.c.push_state == "pending", notifications.c.socket_state == "pending"), "pending"),
    else_="failed",
)


# The new values of a delivery save, by column (the binds are ``b_<column>``).
DELIVERY_VALUES = {
    "id": BigInteger(),
    "push_state": String(),
    "push_message_id": String(),
    "push_error": String(),
    "socket_state": String(),
    "socket_error": String(),
    "attempts": Integer(),
    "next_attempt_at": UtcDateTime(),
    "last_attempt_at": UtcDateTime(),
    "delivered_at": UtcDateTime(),
    "opened_at": UtcDateTime(),
}


def _save_delivery(given: Callable[[str], Any]) -> Any:
    """The UPDATE of one notification's delivery; ``given(column)`` is the new value's expression."""

    def unless_sent(state: str, column: str) -> Any:
        """The new value of ``column``, unless its channel is already stored as sent: writers never move it back."""
        return case((notifications.c[state] == "sent", notifications.c[column]), else_=given(column))

    return (
        update(notifications)
        .where(notifications.c.id == given("id"))
        .values(
            push_state=unless_sent("push_state", "push_state"),
            push_message_id=unless_sent("push_state", "push_message_id"),
            push_error=unless_sent("push_state", "push_error"),
            socket_state=unless_sent("socket_state", "socket_state"),
            socket_error=unless_sent("socket_state", "socket_error"),
            attempts=given("attempts"),
            # Acknowledged (here or by the app meanwhile): nothing is sent again.
            next_attempt_at=case(
                (notifications.c.delivered_at.is_not(None), None),
                (given("delivered_at").is_not(None), None),
                else_=given("next_attempt_at"),
            ),
            last_attempt_at=given("last_attempt_at"),
            delivered_at=func.coalesce(notifications.c.delivered_at, given("delivered_at")),
            opened_at=func.coalesce(notifications.c.opened_at, given("opened_at")),
        )
    )


# (Per row, only the two datetimes compared in the statement are typed, as ever: the others reach SQLite as given.)
SAVE_DELIVERY = _save_delivery(
    lambda column: bindparam(
        f"b_{column}", type_=UtcDateTime if column in ("delivered_at", "next_attempt_at") else None
    )
)
# PostgreSQL: the whole batch in one UPDATE ... FROM the rows given as arrays (driver.execute_many's ``at_once``).
_GIVEN_DELIVERIES = select(
    *(func.unnest(bindparam(f"b_{name}", type_=ARRAY(kind))).label(name) for name, kind in DELIVERY_VALUES.items())
).subquery("given")
SAVE_DELIVERIES_AT_ONCE = _save_delivery(lambda column: _GIVEN_DELIVERIES.c[column])


# A connecting socket's replay: unacknowledged, recent, newest first, with the order's current status;
# an offer that can no longer be taken (answered, cancelled, expired) is not replayed as one.
REPLAY = (
    select(notifications, work_orders.c.status.label("order_status"))
    .join(work_orders, work_orders.c.id == notifications.c.work_id)
    .where(
        notifications.c.recipient_id == bindparam("user_id"),
        notifications.c.delivered_at.is_(None),
        notifications.c.created_at >= bindparam("since", type_=UtcDateTime),
        or_(
            notifications.c.kind != NotificationKind.WORK_ASSIGNED.value,
            and_(
                work_orders.c.status == WorkStatus.PENDING.value,
                work_orders.c.expires_at > bindparam("now", type_=UtcDateTime),
            ),
        ),
    )
    .order_by(notifications.c.id.desc())
    .limit(bindparam("limit"))
)

# Answering an order is proof its offer arrived: acknowledged, never sent or replayed again.
ACKNOWLEDGE_OFFERS = (
    update(notifications)
    .where(
        notifications.c.work_id == bindparam("b_work_id"),
        notifications.c.recipient_id == bindparam("b_recipient_id"),
        notifications.c.kind == NotificationKind.WORK_ASSIGNED.value,
        notifications.c.delivered_at.is_(None),
    )
    .values(delivered_at=bindparam("b_now", type_=UtcDateTime), next_attempt_at=None)
)
ACKNOWLEDGE_ALL_OFFERS = (
    update(notifications)
    .where(
        notifications.c.work_id == bindparam("b_work_id"),
        notifications.c.kind == NotificationKind.WORK_ASSIGNED.value,
        notifications.c.delivered_at.is_(None),
    )
    .values(delivered_at=bindparam("b_now", type_=UtcDateTime), next_attempt_at=None)
)


_STILL_ACTIONABLE = or_(
    notifications.c.kind != NotificationKind.WORK_ASSIGNED.value,
    select(work_orders.c.id)
    .where(work_orders.c.id == notifications.c.work_id, work_orders.c.status == WorkStatus.PENDING.value)
    .exists(),
)
# After a broker outage: what the outage kept from this instance's sockets is due again now...
RETRY_MISSED_ON_SOCKETS = _per_dialect(
    lambda dialect: (
        update(notifications)
        .where(
            _one_of(notifications.c.recipient_id, dialect),
            notifications.c.delivered_at.is_(None),
            notifications.c.socket_state == SocketState.NOT_CONNECTED.value,
            notifications.c.created_at >= bindparam("b_since", type_=UtcDateTime),
            _STILL_ACTIONABLE,
        )
        .values(
            socket_state=SocketState.PENDING.value,
            socket_error="missed_during_broker_outage",
            next_attempt_at=bindparam("b_now", type_=UtcDateTime),
        )
    )
)
# ...and so is every socket attempt that failed because the broker was down, without waiting for its backoff.
RETRY_BROKER_FAILURES = (
    update(notifications)
    .where(
        notifications.c.delivered_at.is_(None),
        notifications.c.next_attempt_at > bindparam("b_now", type_=UtcDateTime),
        notifications.c.socket_state == SocketState.PENDING.value,
        notifications.c.socket_error == "broker_unavailable",
    )
    .values(next_attempt_at=bindparam("b_now", type_=UtcDateTime))
)


class SqlAlchemyNotificationRepository(_Repository, NotificationRepository):
    async def add_many(self, new: Sequence[Notification]) -> None:
        if not new:
            return
        rows = [_notification_columns(n) for n in new]
        if len(rows) == 1:
            new[0].id = await insert_returning_id(self._c, INSERT_NOTIFICATION, rows[0])
            return
        ids = (await self._c.execute(INSERT_NOTIFICATIONS, rows)).scalars().all()
        for n, new_id in zip(new, ids, strict=True):
            n.id = new_id

    async def get(self, notification_id: int) -> Notification | None:
        row = (await self._c.execute(select(notifications).where(notifications.c.id == notification_id))).first()
        return _notification(row) if row else None

    async def get_many(self, notification_ids: Collection[int]) -> list[Notification]:
        if not notification_ids:
            return []
        rows = await self._c.execute(
            select(notifications).where(notifications.c.id.in_(list(notification_ids))).order_by(notifications.c.id)
        )
        return [_notification(row) for row in rows]

    async def save_delivery(self, notification: Notification) -> None:
        await self.save_deliveries([notification])

    async def save_deliveries(self, many: Sequence[Notification]) -> None:
        if not many:
            return
        # A notification saved twice in one batch (its socket outcome, then its push's) is saved as it was last:
        # one UPDATE ... FROM takes an unpredictable one of two rows for the same id.
        latest = {n.id: n for n in many}
        await execute_many(
            self._c,
            SAVE_DELIVERY,
            [{"b_id": n.id, **{f"b_{k}": v for k, v in _delivery_columns(n).items()}} for n in latest.values()],
            at_once=SAVE_DELIVERIES_AT_ONCE,
        )

    async def claim_due(self, now: datetime, limit: int) -> list[Notification]:
        query = (
            select(notifications)
            .where(
                notifications.c.next_attempt_at.is_not(None),
                notifications.c.next_attempt_at <= now,
                notifications.c.delivered_at.is_(None),
            )
            .order_by(notifications.c.next_attempt_at, notifications.c.id)
            .limit(limit)
        )
        if self._locks_rows:
            # Rows another dispatcher holds are skipped, not waited for: each process gets its own batch.
            query = query.with_for_update(skip_locked=True)
        return [_notification(row) for row in await self._c.execute(query)]

    async def replay_for_user(
        self, user_id: int, since: datetime, now: datetime, limit: int
    ) -> list[tuple[Notification, WorkStatus]]:
        rows = await self._c.execute(REPLAY, {"user_id": user_id, "since": since, "now": now, "limit": limit})
        return [(_notification(row), WorkStatus(row.order_status)) for row in rows]

    async def anonymise_for_user(self, user_id: int) -> None:
        theirs = select(work_orders.c.id).where(
            or_(work_orders.c.seeker_id == user_id, work_orders.c.provider_id == user_id)
        )
        keys = sorted(PERSONAL_PAYLOAD_KEYS)
        if self._c.dialect.name == "postgresql":
            # json has no key removal; jsonb does, and the column's json accepts it back.
            as_jsonb = cast(notifications.c.payload, JSONB)
            scrubbed = cast(as_jsonb.op("-")(bindparam("keys", keys, type_=ARRAY(Text))), JSON)
        else:
            scrubbed = func.json_remove(notifications.c.payload, *(f"$.{k}" for k in keys))
        await self._c.execute(update(notifications).where(notifications.c.work_id.in_(theirs)).values(payload=scrubbed))

    async def retry_sockets_now(self, user_ids: Collection[int], since: datetime, now: datetime) -> int:
        changed = 0
        if user_ids:
            changed += (
                await self._c.execute(
                    RETRY_MISSED_ON_SOCKETS[self._c.dialect.name],
                    {"ids": list(user_ids), "b_since": since, "b_now": now},
                )
            ).rowcount
        changed += (await self._c.execute(RETRY_BROKER_FAILURES, {"b_now": now})).rowcount
        return changed

    async def acknowledge_offers(self, work_id: int, recipient_id: int | None, now: datetime) -> None:
        if recipient_id is None:
            await self._c.execute(ACKNOWLEDGE_ALL_OFFERS, {"b_work_id": work_id, "b_now": now})
        else:
            await self._c.execute(
                ACKNOWLEDGE_OFFERS, {"b_work_id": work_id, "b_recipient_id": recipient_id, "b_now": now}
            )

    async def delivery_stats(self, since: datetime, top_errors: int) -> DeliveryStats:
        recent = notifications.c.created_at >= since

        async def counts(column, top: int | None = None) -> dict[str, int]:
            """Count by ``column``; with ``top``, only its ``top`` most frequent non-null values."""
            query = select(column, func.count()).where(recent).group_by(column).order_by(func.count().desc())
            if top is not None:
                query = query.where(column.is_not(None)).limit(top)
            return {key: count for key, count in (await self._c.execute(query)).all()}

        by_status = await counts(DELIVERY_STATUS.label("delivery_status"))
        opened = (await self._c.execute(select(func.count(notifications.c.opened_at)).where(recent))).scalar_one()
        reached = or_(
            notifications.c.push_state == "sent",
            notifications.c.socket_state == "sent",
            notifications.c.delivered_at.is_not(None),
        )
        kinds = await self._c.execute(
            select(
                notifications.c.kind,
                func.count(),
                func.sum(case((reached, 1), else_=0)),
                func.sum(case((notifications.c.push_state == "sent", 1), else_=0)),
                func.sum(case((notifications.c.socket_state == "sent", 1), else_=0)),
                func.count(notifications.c.delivered_at),
                func.count(notifications.c.opened_at),
            )
            .where(recent)
            .group_by(notifications.c.kind)
        )
        by_kind = {
            kind: {
                "created": created,
                "sent": int(sent or 0),
                "pushed": int(pushed or 0),
                "on_socket": int(on_socket or 0),
                "delivered": delivered,
                "opened": opened_count,
            }
            for kind, created, sent, pushed, on_socket, delivered, opened_count in kinds.all()
        }
        return DeliveryStats(
            by_kind=by_kind,
            by_platform=await self._funnel_by_platform(recent),
            opened=opened,
            total=sum(by_status.values()),
            by_delivery_status=by_status,
            by_push_state=await counts(notifications.c.push_state),
            by_socket_state=await counts(notifications.c.socket_state),
            push_errors=await counts(notifications.c.push_error, top_errors),
        )

    async def _funnel_by_platform(self, recent) -> dict[str, dict[str, int]]:
        """A notification counts for a platform when FCM accepted its push for a device of that platform."""
        pushed_to = (
            select(delivery_attempts.c.notification_id, device_tokens.c.platform)
            .join(device_tokens, device_tokens.c.id == delivery_attempts.c.device_id)
            .where(delivery_attempts.c.channel == "push", delivery_attempts.c.outcome == "sent")
            .distinct()
            .subquery()
        )
        rows = await self._c.execute(
            select(
                pushed_to.c.platform,
                func.count(),
                func.count(notifications.c.delivered_at),
                func.count(notifications.c.opened_at),
            )
            .join(notifications, notifications.c.id == pushed_to.c.notification_id)
            .where(recent)
            .group_by(pushed_to.c.platform)
        )
        return {
            platform: {"pushed": pushed, "delivered": delivered, "opened": opened}
            for platform, pushed, delivered, opened in rows.all()
        }

    async def response_times(self, since: datetime, limit: int) -> tuple[list[float], list[float]]:
        rows = await self._c.execute(
            select(notifications.c.created_at, notifications.c.delivered_at, notifications.c.opened_at)
            .where(notifications.c.created_at >= since, notifications.c.delivered_at.is_not(None))
            .order_by(notifications.c.id.desc())
            .limit(limit)
        )
        return _response_times(rows.all())

    async def list_for_user(self, user_id: int, limit: int, before_id: int | None) -> list[Notification]:
        query = select(notifications).where(notifications.c.recipient_id == user_id)
        if before_id is not None:
            query = query.where(notifications.c.id < before_id)
        rows = await self._c.execute(query.order_by(notifications.c.id.desc()).limit(limit))
        return [_notification(row) for row in rows]

    async def delete_before(self, cutoff: datetime, limit: int) -> int:
        # Oldest by id (ids grow with time), so the scan stops at the first young row.
        return await delete_oldest(
            self._c, notifications, notifications.c.created_at < cutoff, notifications.c.id, limit
        )

    async def list_for_work(self, work_id: int, limit: int) -> list[Notification]:
        rows = await self._c.execute(
            select(notifications).where(notifications.c.work_id == work_id).order_by(notifications.c.id).limit(limit)
        )
        return [_notification(row) for row in rows]

    async def due_backlog(self, now: datetime) -> tuple[int, datetime | None]:
        due = and_(notifications.c.next_attempt_at.is_not(None), notifications.c.next_attempt_at <= now)
        count, oldest = (
            await self._c.execute(select(func.count(), func.min(notifications.c.next_attempt_at)).where(due))
        ).one()
        # min() over a UtcDateTime comes back untyped on SQLite (a string): read it as the column would.
        if isinstance(oldest, str):
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return count, oldest


def _response_times(rows) -> tuple[list[float], list[float]]:
    to_ack = [max(0.0, (delivered - created).total_seconds()) for created, delivered, _ in rows]
    to_open = [max(0.0, (opened - created).total_seconds()) for created, _, opened in rows if opened is not None]
    return to_ack, to_open
