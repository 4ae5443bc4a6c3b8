"""Creating the async engine for PostgreSQL (psycopg 3) or the embedded SQLite file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


@dataclass(frozen=True)
class DatabaseSettings:
    url: str
    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout: float = 5.0  # seconds to wait for a free connection before giving up
    connect_timeout: float = 5.0  # seconds to open a connection: a down database fails fast, not hangs
    statement_timeout_ms: int = 10_000  # PostgreSQL only: the longest one statement may run
    echo: bool = False


def sqlite_path(data_dir: Path) -> Path:
    """The embedded default's one SQLite file, in the data directory."""
    return (data_dir / "workcast.sqlite3").resolve()


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{sqlite_path(data_dir)}"


def normalize_url(url: str) -> str:
    """Accept the URLs operators write (``postgres://``, ``postgresql://``) and pick our async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    url = make_url(normalize_url(settings.url))
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url.render_as_string(hide_password=False), settings)
    return create_async_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        pool_pre_ping=False,  # a dead connection surfaces as StorageUnavailable and is replaced
        connect_args={
            "connect_timeout": max(1, int(settings.connect_timeout)),
            "options": f"-c statement_timeout={settings.statement_timeout_ms}",
            "application_name": "workcast",
        },
        echo=settings.echo,
    )


def _sqlite_engine(url: str, settings: DatabaseSettings) -> AsyncEngine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # One connection: SQLite has one writer at a time anyway (every transaction here is BEGIN
    # IMMEDIATE), and waiting in the pool's asyncio queue is fair and prompt, where waiting in
    # SQLite's busy handler sleeps in growing steps (up to 100 ms) and made the latency tail long.
    engine = create_async_engine(
        url,
        pool_size=1,
        max_overflow=0,
        # The pool is the queue of every transaction here, so a burst (thousands of apps reconnecting
        # at once) waits longer in it than on a server database before it is called unavailable.
        pool_timeout=max(settings.pool_timeout, 30.0),
        connect_args={"timeout": settings.connect_timeout},
        echo=settings.echo,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first: a new connection (another process, the CLI, a test's) met "database is
        # locked" at once while the server held the writer (seen once in CI).
        cursor.execute(f"PRAGMA busy_timeout={int(settings.connect_timeout * 1000)}")
        # WAL (readers do not block the writer) is a property of the file: set once, only when it is not yet,
        # since setting it writes to the file (and needs the writer's lock).
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection) -> None:
        # Take the write lock up front: a deferred transaction that reads and then writes can fail
        # with "database is locked" at once instead of waiting its turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
