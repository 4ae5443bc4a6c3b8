"""Schema migrations with Alembic: the only way the schema is created or changed."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.engine import normalize_url

MIGRATIONS = Path(__file__).parent / "migrations"


class MigrationBlocked(Exception):
    """A migration needs something only the database's administrator can give; the message says what."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on a '%' in a password.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``. Blocking.

    Alembic's environment runs its own event loop, so inside a running loop the work moves to a thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(url), revision)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(command.upgrade, alembic_config(url), revision).result()


@functools.cache
def head_revision() -> str:
    """The newest migration this code knows."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


async def schema_problem(engine: AsyncEngine) -> str | None:
    """None when the database is at this code's newest migration, else what is wrong (for /ready and operators)."""
    try:
        async with engine.connect() as connection:
            current = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except DBAPIError as error:
        if "alembic_version" in str(error.orig):
            return "not migrated: run `workcast migrate`"
        raise
    head = await asyncio.to_thread(head_revision)
    if current != head:
        return f"at migration {current or 'none'}, this code needs {head}: run `workcast migrate`"
    return None


async def upgrade_async(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, url, revision)
