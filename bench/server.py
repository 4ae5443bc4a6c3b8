"""The app as the benchmark runs it: the real ``create_app()`` plus the yardstick endpoint.

``POST /bench/insert`` does nothing but one INSERT of one row through the same engine and returns
JSON: assign-work throughput is reported as a ratio to it, because absolute numbers drift from
machine to machine. Two of them: ``/bench/insert`` with SQLAlchemy Core (as our repositories) and
``/bench/insert-orm`` with an ORM session, the yardstick the benchmark issue's target was set on.
"""

from __future__ import annotations

import argparse

import uvicorn
from litestar import post
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import registry

from entrypoints.http.app import create_app
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


def create_bench_app():
    app = create_app(Settings.from_env())
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

    app.register(insert_one_row)
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
    uvicorn.run(
        create_bench_app(),
        host="127.0.0.1",
        port=args.port,
        ws=args.ws,
        log_config=None,
        lifespan="on",
        backlog=4096,
        ws_max_size=64 * 1024,
        ws_per_message_deflate=False,  # as `workcast serve`
    )


if __name__ == "__main__":
    main()
