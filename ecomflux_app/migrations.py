"""Versioned schema steps for `ecomflux db upgrade`, portable across SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Callable

from .db import database, is_postgres
from .models import ALL_MODELS, SchemaVersion

log = logging.getLogger(__name__)


def _v1_initial(db) -> None:
    db.create_tables([m for m in ALL_MODELS if m is not SchemaVersion], safe=True)


def _v2_lean_delivery_writes(db) -> None:
    """Webhook rows cost the database less to write: no index that (topic, id) already covers, and
    on PostgreSQL the body compressed with lz4 instead of pglz (measured: about a quarter of the
    server's CPU per inserted row; pglz_compress was its largest single cost)."""
    db.execute_sql("DROP INDEX IF EXISTS webhookdelivery_topic")
    if is_postgres():
        supported = db.execute_sql(
            "SELECT current_setting('server_version_num')::int >= 140000 AND EXISTS "
            "(SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals))"
        ).fetchone()[0]
        if supported:
            db.execute_sql('ALTER TABLE "webhookdelivery" ALTER COLUMN body SET COMPRESSION lz4')
        else:
            log.info("PostgreSQL without lz4: webhook bodies stay pglz-compressed")


def _v9_tax_setup(db) -> None:
    """Non-US companies keep their tax codes on the connection (read once, refreshed from the page)."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    from .models import QboConnection

    table = QboConnection._meta.table_name
    have = {c.name for c in db.get_columns(table)}
    migrator = PostgresqlMigrator(db) if is_postgres() else SqliteMigrator(db)
    steps = [migrator.add_column(table, name, field) for name, field in
             (("tax_setup", QboConnection.tax_setup), ("tax_setup_read_at", QboConnection.tax_setup_read_at))
             if name not in have]
    if steps:
        migrate(*steps)


# Append new steps (playhouse.migrate operations) here; never edit an applied one.
STEPS: list[tuple[int, str, Callable]] = [
    (1, "initial schema", _v1_initial),
    (2, "lean webhook row writes", _v2_lean_delivery_writes),
    (9, "tax codes of non-US companies on the connection", _v9_tax_setup),
]


def current_version() -> int:
    if not database.table_exists(SchemaVersion._meta.table_name):
        return 0
    latest = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return latest.version if latest else 0


def upgrade() -> list[str]:
    """Apply every pending step, each in its own transaction; returns what was applied."""
    database.create_tables([SchemaVersion], safe=True)
    applied = []
    have = current_version()
    for version, name, step in STEPS:
        if version <= have:
            continue
        with database.atomic():
            step(database)
            SchemaVersion.create(version=version)
        applied.append(f"{version}: {name}")
    return applied
