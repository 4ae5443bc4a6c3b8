"""The app as the benchmark runs it: the real ``create_app()`` plus the yardstick endpoint.

``POST /bench/insert`` does nothing but one INSERT of one row through the same engine and returns
JSON: assign-work throughput is reported as a ratio to it, because absolute numbers drift from
machine to machine. Two of them: ``/bench/insert`` with SQLAlchemy Core (as our repositories) and
``/bench/insert-orm`` with an ORM session, the yardstick the benchmark issue's target was set on.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import threading
import time
import traceback
import tracemalloc
from typing import Any

import uvicorn
from litestar import get, post
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import registry

from entrypoints.http.app import create_app
from entrypoints.server import uvicorn_options
from entrypoints.settings import Settings

bench_metadata = MetaData()
bench_rows = Table(
    "bench_rows",
    bench_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note", String(32), nullable=False),
)


class BenchRow:
    """The same table mapped for the ORM yardstick."""

    def __init__(self, note: str) -> None:
        self.note = note


registry(metadata=bench_metadata).map_imperatively(BenchRow, bench_rows)


class GcPauses:
    """The garbage collector's pauses by generation, from its callbacks: the latency tail's usual suspect.

    Each pause is timed on the wall clock and on the thread's CPU clock (on a busy machine a collection's wall
    time also holds the time the process waited for a core, which is not the collector's doing), and a young
    collection notes how many objects it examined (``young``: the threshold is 2,000, a burst can make it
    far more, see ``entrypoints/http/young_objects.py``)."""

    def __init__(self) -> None:
        self._started = (0.0, 0.0)
        self._young = -1
        # generation, wall s, CPU s, when (epoch s), young objects examined (-1: an older collection)
        self.pauses: list[tuple[int, float, float, float, int]] = []
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._young = len(gc.get_objects(0)) if info["generation"] == 0 else -1
            self._started = (time.perf_counter(), time.thread_time())
        else:
            wall, cpu = time.perf_counter() - self._started[0], time.thread_time() - self._started[1]
            self.pauses.append((info["generation"], wall, cpu, time.time(), self._young))

    def summary_and_reset(self) -> dict:
        pauses, self.pauses = self.pauses, []
        summary = {}
        for generation in (0, 1, 2):
            times = [(wall, cpu) for g, wall, cpu, _, _ in pauses if g == generation]
            summary[f"gen{generation}"] = {
                "collections": len(times),
                "max_ms": round(max((wall for wall, _ in times), default=0) * 1000, 2),
                "max_cpu_ms": round(max((cpu for _, cpu in times), default=0) * 1000, 2),
                "total_ms": round(sum(wall for wall, _ in times) * 1000, 2),
            }
        longest = sorted(pauses, key=lambda pause: -pause[1])[:5]
        summary["longest"] = [
            {"at": round(at, 3), "gen": g, "ms": round(wall * 1000, 2), "cpu_ms": round(cpu * 1000, 2), "young": young}
            for g, wall, cpu, at, young in longest
        ]
        return summary


class TracedMemory:
    """Python's allocations grown since ``start``, by the part of the code that made them (bench.socket_memory)."""

    def __init__(self) -> None:
        self._baseline: tracemalloc.Snapshot | None = None

    def start(self) -> None:
        gc.collect()
        tracemalloc.start(1)
        self._baseline = tracemalloc.take_snapshot()

    def grown_by_part(self) -> dict[str, Any]:
        """``parts``: bytes grown per package; ``lines``: the 30 lines that grew most (file:line)."""
        assert self._baseline is not None, "POST /bench/tracemalloc/start first"
        gc.collect()
        grown: dict[str, int] = {}
        by_line = tracemalloc.take_snapshot().compare_to(self._baseline, "lineno")
        for stat in by_line:
            part = part_of(stat.traceback[0].filename)
            grown[part] = grown.get(part, 0) + stat.size_diff
        top = sorted(by_line, key=lambda stat: -stat.size_diff)[:30]
        return {
            "parts": dict(sorted(grown.items(), key=lambda item: -item[1])),
            "lines": {f"{short(t.traceback[0].filename)}:{t.traceback[0].lineno}": t.size_diff for t in top},
        }


def short(filename: str) -> str:
    return filename.split("/site-packages/", 1)[-1].split("/src/", 1)[-1]


def part_of(filename: str) -> str:
    """``site-packages/uvicorn/protocols/...`` -> ``uvicorn``; the standard library's asyncio -> ``asyncio``; ours by
    layer (``workcast: entrypoints``)."""
    path = filename.replace("\\", "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for layer in ("domain", "application", "adapters", "entrypoints"):
        if f"/src/{layer}/" in path:
            return f"workcast: {layer}"
    if "/asyncio/" in path:
        return "asyncio"
    return "python: " + path.rsplit("/", 1)[-1]


class StallWatch:
    """The event loop's stalls: a ticker on the loop notes every time it woke ``threshold`` s late (reliable), and a
    thread takes the loop thread's stack while a stall lasts (best effort: a stall that holds the GIL, like a
    garbage collection, ends before the thread can look)."""

    def __init__(self, threshold: float = 0.02) -> None:
        self.threshold = threshold
        self.stalls: list[dict] = []
        self._tick = time.perf_counter()
        self._loop_thread: int | None = None
        self._stack: list[str] | None = None

    async def tick_forever(self) -> None:
        self._loop_thread = threading.get_ident()
        threading.Thread(target=self._watch, daemon=True, name="stall-watch").start()
        while True:
            before = self._tick = time.perf_counter()
            await asyncio.sleep(0.002)
            late = time.perf_counter() - before - 0.002
            if late > self.threshold:
                self.stalls.append({"at": round(time.time(), 3), "ms": round(late * 1000, 1), "stack": self._stack})
            self._stack = None

    def _watch(self) -> None:
        while True:
            time.sleep(0.002)
            tick = self._tick
            if self._stack is None and time.perf_counter() - tick > self.threshold:
                frame = sys._current_frames().get(self._loop_thread or 0)
                self._stack = [f"{short(f.filename)}:{f.lineno} {f.name}" for f in traceback.extract_stack(frame)[-12:]]

    def take(self) -> list[dict]:
        taken, self.stalls = self.stalls, []
        return taken


def without(parts: str, app) -> None:
    """BENCH_WITHOUT=metrics,audit: switch a part off, to measure what it costs (bench.observability_cost)."""
    if "metrics" in parts:
        metrics = app.state.container.metrics()
        for name in ("notification_created", "channel_outcome", "push_error", "acknowledged", "http_request"):
            setattr(metrics, name, lambda *args, **kwargs: None)
        metrics.socket_disconnect = lambda *args: None
    if "audit" in parts:
        from adapters.sqlalchemy.audit import SqlAlchemyDeliveryAttemptRepository

        async def record_nothing(self, attempts) -> None:
            return None

        SqlAlchemyDeliveryAttemptRepository.add_many = record_nothing


def create_bench_app():
    app = create_app(Settings.from_env())
    without(os.environ.get("BENCH_WITHOUT", ""), app)
    engine = app.state.container.engine()

    @post("/bench/insert", status_code=200, include_in_schema=False)
    async def insert_one_row() -> dict:
        async with engine.begin() as connection:
            row_id = (
                await connection.execute(insert(bench_rows).values(note="x").returning(bench_rows.c.id))
            ).scalar_one()
        return {"status": "success", "message": "inserted", "data": {"id": row_id}}

    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @post("/bench/insert-orm", status_code=200, include_in_schema=False)
    async def insert_one_row_with_the_orm() -> dict:
        async with sessions() as session:
            row = BenchRow(note="x")
            session.add(row)
            await session.commit()
        return {"status": "success", "message": "inserted", "data": {"id": row.id}}

    pauses = GcPauses()
    stalls = StallWatch(float(os.environ.get("BENCH_STALL_MS", "20")) / 1000)

    @get("/bench/stalls", include_in_schema=False)
    async def stalls_since_last_asked() -> list[dict]:
        if not os.environ.get("BENCH_STALL_MS"):  # off unless asked: its 2 ms ticker costs a little CPU
            return []
        if stalls._loop_thread is None:
            app.state.stall_task = asyncio.get_running_loop().create_task(stalls.tick_forever())
            return []
        return stalls.take()

    @get("/bench/gc", include_in_schema=False)
    async def gc_pauses_since_last_asked() -> dict:
        return pauses.summary_and_reset()

    traced = TracedMemory()

    @post("/bench/tracemalloc/start", status_code=200, include_in_schema=False)
    async def start_tracing() -> dict:
        traced.start()
        return {"tracing": True}

    @get("/bench/tracemalloc/grown", include_in_schema=False)
    async def traced_growth() -> dict:
        return traced.grown_by_part()

    app.register(stalls_since_last_asked)
    app.register(start_tracing)
    app.register(traced_growth)
    app.register(insert_one_row)
    app.register(gc_pauses_since_last_asked)
    app.register(insert_one_row_with_the_orm)
    return app


async def create_reference_table(url: str) -> None:
    from adapters.sqlalchemy.engine import DatabaseSettings, create_engine

    engine = create_engine(DatabaseSettings(url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(bench_metadata.create_all)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", default="wsproto")
    args = parser.parse_args()
    # The same uvicorn options as `workcast serve` (header deadline, socket protocol, pings), plus a deep backlog.
    loop = os.environ.get("BENCH_LOOP") or None  # asyncio or uvloop, to compare them; else serve's choice
    options = uvicorn_options(Settings.from_env(), "127.0.0.1", args.port, args.ws, loop=loop) | {"backlog": 4096}
    uvicorn.run(create_bench_app(), **options)


if __name__ == "__main__":
    main()
