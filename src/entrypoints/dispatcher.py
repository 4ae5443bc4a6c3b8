"""The retry loop: expire overdue orders, then deliver due notifications, every few seconds.

Runs inside each app instance by default (DISPATCHER_ENABLED) and as ``workcast dispatch`` for a
separate worker. Several of them at once are safe: claiming skips what another one holds.
"""

from __future__ import annotations

import asyncio
import logging

from adapters.prometheus.metrics import PrometheusMetrics
from application.errors import SchemaNotMigrated, StorageUnavailable
from application.use_cases.dispatch_due_notifications import DispatchDueNotifications
from application.use_cases.expire_overdue_work import ExpireOverdueWork
from application.use_cases.measure_backlog import MeasureBacklog
from application.use_cases.sweep_old_records import SweepOldRecords
from entrypoints.logs import OncePer

log = logging.getLogger(__name__)
SWEEP_EVERY = 600.0  # seconds between retention sweeps (and one at start)
# A sweep that stopped at its batch cap left work behind: the next one comes this soon. (At 200 orders/s,
# ~17M notifications a day, a sweep every 10 minutes of 100,000 rows a kind would fall behind.)
SWEEP_AGAIN_AFTER_BACKLOG = 5.0
MEASURE_EVERY = 5.0  # seconds between backlog measurements (a scrape every 15 s sees a fresh one)


class Dispatcher:
    def __init__(
        self,
        dispatch: DispatchDueNotifications,
        expire: ExpireOverdueWork,
        interval: float,
        batch: int,
        sweep: SweepOldRecords | None = None,
        backlog: MeasureBacklog | None = None,
        metrics: PrometheusMetrics | None = None,
    ) -> None:
        self._dispatch = dispatch
        self._expire = expire
        self._interval = interval
        self._batch = batch
        self._sweep = sweep
        self._backlog = backlog
        self._metrics = metrics
        self._warnings = OncePer(60.0)
        self._next_sweep = 0.0  # loop time; 0: at the first round
        self._measure_due = OncePer(MEASURE_EVERY)

    async def run_once(self) -> tuple[int, int]:
        """One round: (orders expired, notifications attempted). Keeps going while batches come back full."""
        if self._backlog is not None and self._metrics is not None and self._measure_due.due("backlog"):
            # Before dispatching: what was waiting for this round, and for how long.
            due, oldest_age = await self._backlog.execute()
            self._metrics.dispatcher_due.set(due)
            self._metrics.dispatcher_oldest_due.set(oldest_age)
        now = asyncio.get_running_loop().time()
        if self._sweep is not None and now >= self._next_sweep:
            swept, backlog = await self._sweep.execute()
            self._next_sweep = now + (SWEEP_AGAIN_AFTER_BACKLOG if backlog else SWEEP_EVERY)
            if swept:
                log.info("old records swept", extra={"deleted": swept, "more_to_sweep": backlog})
        expired = await self._expire.execute()
        attempted = 0
        while True:
            claimed = await self._dispatch.execute()
            attempted += claimed
            if claimed < self._batch:
                return expired, attempted

    async def run_forever(self) -> None:
        while True:
            try:
                expired, attempted = await self.run_once()
                if expired or attempted:
                    log.info("dispatch round", extra={"expired_orders": expired, "attempted_notifications": attempted})
            except SchemaNotMigrated:
                if self._warnings.due("schema"):
                    log.error("dispatcher: the database schema is missing or out of date: run `workcast migrate`")
            except StorageUnavailable as error:
                log.warning("dispatcher: database unavailable, will try again", extra={"error": str(error)})
            except Exception:
                log.exception("dispatcher round failed, will try again")
            await asyncio.sleep(self._interval)
