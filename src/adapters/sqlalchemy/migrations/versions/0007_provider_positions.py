"""The spatial index over active providers (adapters/geo).

Every profile with a location gets its unit vector (geo_x, geo_y, geo_z), computed here for existing rows.
PostgreSQL: the ``cube`` extension (contrib, trusted: the database owner may create it) and a partial GiST
index over active providers. SQLite: an R*Tree virtual table kept in step by triggers.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

from adapters.sqlalchemy.migrate import MigrationBlocked

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ACTIVE_WITH_POSITION = "role = 'provider' AND is_active_for_work AND geo_x IS NOT NULL"
NEEDS_CUBE = (
    "workcast needs PostgreSQL's `cube` extension (in the postgresql-contrib package, shipped with the Debian "
    "and official builds) for its spatial index, and could not create it: {error}. Have the database owner or a "
    "superuser run `CREATE EXTENSION cube;` in this database once, then run `workcast migrate` again."
)


def upgrade() -> None:
    with op.batch_alter_table("profiles") as batch:
        for axis in "xyz":
            batch.add_column(sa.Column(f"geo_{axis}", sa.Float(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgres()
    else:
        _upgrade_sqlite()


def _upgrade_postgres() -> None:
    try:
        with op.get_bind().begin_nested():
            op.execute("CREATE EXTENSION IF NOT EXISTS cube")
    except DBAPIError as error:
        raise MigrationBlocked(NEEDS_CUBE.format(error=str(error.orig).strip())) from error
    op.execute(
        "UPDATE profiles SET geo_x = cos(radians(latitude)) * cos(radians(longitude)), "
        "geo_y = cos(radians(latitude)) * sin(radians(longitude)), geo_z = sin(radians(latitude)) "
        "WHERE latitude IS NOT NULL AND longitude IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX ix_profiles_provider_position ON profiles "
        f"USING gist (cube(ARRAY[geo_x, geo_y, geo_z])) WHERE {ACTIVE_WITH_POSITION}"
    )


def _upgrade_sqlite() -> None:
    # SQLite may lack its math functions, so existing rows get their vectors from Python, in batches.
    bind = op.get_bind()
    last_id = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, latitude, longitude FROM profiles WHERE id > :after AND latitude IS NOT NULL "
                "AND longitude IS NOT NULL ORDER BY id LIMIT 5000"
            ),
            {"after": last_id},
        ).all()
        if not rows:
            break
        bind.execute(
            sa.text("UPDATE profiles SET geo_x = :x, geo_y = :y, geo_z = :z WHERE id = :id"),
            [
                dict(zip(("id", "x", "y", "z"), (row.id, *_unit_vector(row.latitude, row.longitude)), strict=True))
                for row in rows
            ],
        )
        last_id = rows[-1].id
    op.execute("CREATE VIRTUAL TABLE provider_positions USING rtree(id, min_x, max_x, min_y, max_y, min_z, max_z)")
    op.execute(
        "INSERT INTO provider_positions SELECT id, geo_x, geo_x, geo_y, geo_y, geo_z, geo_z FROM profiles "
        f"WHERE {ACTIVE_WITH_POSITION}"
    )
    position = "new.id, new.geo_x, new.geo_x, new.geo_y, new.geo_y, new.geo_z, new.geo_z"
    active = "new.role = 'provider' AND new.is_active_for_work AND new.geo_x IS NOT NULL"
    op.execute(
        f"CREATE TRIGGER profiles_position_insert AFTER INSERT ON profiles WHEN {active} "
        f"BEGIN INSERT INTO provider_positions VALUES ({position}); END"
    )
    op.execute(
        "CREATE TRIGGER profiles_position_update AFTER UPDATE OF role, is_active_for_work, geo_x, geo_y, geo_z "
        "ON profiles BEGIN DELETE FROM provider_positions WHERE id = old.id; "
        f"INSERT INTO provider_positions SELECT {position} WHERE {active}; END"
    )
    op.execute(
        "CREATE TRIGGER profiles_position_delete AFTER DELETE ON profiles "
        "BEGIN DELETE FROM provider_positions WHERE id = old.id; END"
    )


def _unit_vector(latitude: float, longitude: float) -> tuple[float, float, float]:
    # Frozen here rather than imported: a migration must keep meaning what it meant when written.
    lat, lon = math.radians(latitude), math.radians(longitude)
    return math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_profiles_provider_position")
    else:
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS profiles_position_{trigger}")
        op.execute("DROP TABLE IF EXISTS provider_positions")
    with op.batch_alter_table("profiles") as batch:
        for axis in "xyz":
            batch.drop_column(f"geo_{axis}")
