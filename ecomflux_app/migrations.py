"""Versioned schema steps for `ecomflux db upgrade`, portable across SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Callable

from .db import database, is_postgres
from .models import ALL_MODELS, Payout, SchemaVersion

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


def _v8_payouts(db) -> None:
    """Shopify Payments payouts and their balance transactions (a fresh database has it from step 1)."""
    if not db.table_exists(Payout._meta.table_name):
        db.create_tables([Payout], safe=True)


# Append new steps (playhouse.migrate operations) here; never edit an applied one.
STEPS: list[tuple[int, str, Callable]] = [
    (1, "initial schema", _v1_initial),
    (2, "lean webhook row writes", _v2_lean_delivery_writes),
    (8, "shopify payments payouts", _v8_payouts),
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
