from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from application.ports import Clock, UnitOfWorkFactory
from application.use_cases.provision_profile import ProfileFields, Upsert, plan_upsert, write_upserts
from domain.errors import DomainError
from domain.geo import GeoPoint
from domain.profiles import Role, check_external_id

BATCH = 500  # lines per transaction: one read of who exists, then the writes
MAX_REJECTIONS_LISTED = 1000


@dataclass
class ImportReport:
    lines: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)  # {"line", "field", "reason"}, 1-based lines

    def reject(self, line: int, reason: str, field_name: str | None = None) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REJECTIONS_LISTED:
            self.rejections.append({"line": line, "field": field_name, "reason": reason})


class ImportProfiles:
    """Take in an existing app's users: one profile per record, upserted by external id, in batches.

    A bad record is reported with its line number and reason and never stops the good ones. Records
    come as an async stream (an HTTP body read as it arrives, or a file), so a large import is never
    held in memory whole.
    """

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self, records: AsyncIterator[tuple[int, Any]], on_batch=None) -> ImportReport:
        """``records``: (1-based line number, a dict or the raw JSON text of one record)."""
        report = ImportReport()
        batch: list[tuple[int, str, ProfileFields]] = []
        async for line, record in records:
            report.lines += 1
            try:
                batch.append((line, *_fields(record)))
            except DomainError as error:
                report.reject(line, error.message, error.field)
            except (ValueError, TypeError, RecursionError) as error:  # not JSON, not UTF-8, nested too deep
                report.reject(line, f"not a JSON object: {str(error)[:200]}")
            if len(batch) >= BATCH:
                await self._write(batch, report)
                batch = []
                if on_batch:
                    on_batch(report)
        if batch:
            await self._write(batch, report)
        if on_batch:
            on_batch(report)
        return report

    async def _write(self, batch: list[tuple[int, str, ProfileFields]], report: ImportReport) -> None:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            known = await uow.profiles.by_external_ids({e for _, e, _ in batch})
            planned: dict[str, Upsert] = {}
            for line, external_id, fields in batch:
                earlier = planned.get(external_id)  # the same id twice in one batch: the later record updates
                try:
                    plan = await plan_upsert(
                        uow, external_id, fields, earlier.profile if earlier else known.get(external_id), now
                    )
                except DomainError as error:  # nothing written for it: the rest of the batch stays good
                    report.reject(line, error.message, error.field)
                    continue
                if earlier is not None:  # counted as an update of the earlier line's profile
                    plan = Upsert(plan.profile, earlier.created, plan.device or earlier.device)
                    report.updated += 1
                planned[external_id] = plan
            await write_upserts(uow, list(planned.values()), now)
            await uow.commit()
        report.created += sum(p.created for p in planned.values())
        report.updated += sum(not p.created for p in planned.values())


def _fields(record: Any) -> tuple[str, ProfileFields]:
    if isinstance(record, (str, bytes)):
        record = json.loads(record)
    if not isinstance(record, Mapping):
        raise ValueError("each line must be a JSON object")
    external_id = _text(record, "external_id")
    check_external_id(external_id)
    role = _text(record, "role")
    if role not in Role.__members__.values():
        raise DomainError(f"role must be one of {', '.join(r.value for r in Role)}", field="role")
    latitude, longitude = record.get("latitude"), record.get("longitude")
    location = None
    if latitude not in (None, "") or longitude not in (None, ""):
        location = GeoPoint(_number(latitude, "latitude"), _number(longitude, "longitude"))
    active = record.get("is_active_for_work")
    if isinstance(active, str) and active.lower() in ("true", "false", "1", "0", ""):  # CSV gives text
        active = None if active == "" else active.lower() in ("true", "1")
    if active is not None and not isinstance(active, bool):
        raise DomainError("is_active_for_work must be true or false", field="is_active_for_work")
    token = record.get("fcm_token") or None
    if token is not None and not isinstance(token, str):
        raise DomainError("fcm_token must be text", field="fcm_token")
    return external_id, ProfileFields(
        Role(role), _text(record, "name"), _text(record, "mobile", required=False), active, location, token
    )


def _text(record: Mapping, name: str, required: bool = True) -> str:
    value = record.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise DomainError(f"{name} must be text", field=name)
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise DomainError(f"{name} must be a number", field=name) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DomainError(f"{name} must be a number", field=name)
    return float(value)
