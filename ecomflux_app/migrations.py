"""Versioned schema steps for `ecomflux db upgrade`, portable across SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Callable

from .db import database, is_postgres
from .models import ALL_MODELS, BackfillRun, Payout, QboConnection, SchemaVersion, StaffSession, StaffUser, SyncRecord

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


def _v4_revocable_staff_sessions(db) -> None:
    """Support console sessions held server-side (sign-out, disabling and role changes end them),
    and disabled staff accounts. Idempotent: a fresh database already has both from step 1."""
    from playhouse.migrate import SchemaMigrator, migrate

    table = StaffUser._meta.table_name
    if "disabled_at" not in {c.name for c in db.get_columns(table)}:
        migrate(SchemaMigrator.from_database(getattr(db, "obj", db)).add_column(table, "disabled_at", StaffUser.disabled_at))
    db.create_tables([StaffSession], safe=True)


def _v5_raw_webhook_bodies(db) -> None:
    """Webhook rows keep a body's exact bytes when it is not storable as text (invalid UTF-8, NUL)."""
    if "raw_body" not in {c.name for c in db.get_columns("webhookdelivery")}:
        kind = "BYTEA" if is_postgres() else "BLOB"
        db.execute_sql(f'ALTER TABLE "webhookdelivery" ADD COLUMN raw_body {kind}')


def _v6_backfill_lease(db) -> None:
    """BackfillRun.owner and lease_until: a run whose process died is seen as such (idempotent)."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    table = BackfillRun._meta.table_name
    have = {c.name for c in db.get_columns(table)}
    migrator = PostgresqlMigrator(db) if is_postgres() else SqliteMigrator(db)
    steps = [migrator.add_column(table, name, getattr(BackfillRun, name))
             for name in ("owner", "lease_until") if name not in have]
    if steps:
        migrate(*steps)


def _v9_tax_setup(db) -> None:
    """Non-US companies keep their tax codes on the connection (read once, refreshed from the page)."""
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    table = QboConnection._meta.table_name
    have = {c.name for c in db.get_columns(table)}
    migrator = PostgresqlMigrator(db) if is_postgres() else SqliteMigrator(db)
    steps = [migrator.add_column(table, name, field) for name, field in
             (("tax_setup", QboConnection.tax_setup), ("tax_setup_read_at", QboConnection.tax_setup_read_at))
             if name not in have]
    if steps:
        migrate(*steps)


def _v3_reflected_refunds(db) -> None:
    """The ledger remembers which refunds an order's document nets out (the as-sold sale documents)."""
    if "reflected_refunds" not in {c.name for c in db.get_columns("syncrecord")}:
        from playhouse.migrate import SchemaMigrator, migrate

        real = getattr(db, "obj", None) or db  # the migrator needs the database behind the proxy
        migrate(SchemaMigrator.from_database(real).add_column("syncrecord", "reflected_refunds",
                                                              SyncRecord.reflected_refunds))


def _v8_payouts(db) -> None:
    """Shopify Payments payouts and their balance transactions (a fresh database has it from step 1)."""
    if not db.table_exists(Payout._meta.table_name):
        db.create_tables([Payout], safe=True)


# Append new steps (playhouse.migrate operations) here; never edit an applied one.
STEPS: list[tuple[int, str, Callable]] = [
    (1, "initial schema", _v1_initial),
    (2, "lean webhook row writes", _v2_lean_delivery_writes),
    (3, "refunds an order's document nets out", _v3_reflected_refunds),
    (4, "revocable staff sessions, disabled staff accounts", _v4_revocable_staff_sessions),
    (5, "raw bytes of unstorable webhook bodies", _v5_raw_webhook_bodies),
    (6, "backfill run lease", _v6_backfill_lease),
    (8, "shopify payments payouts", _v8_payouts),
    (9, "tax codes of non-US companies on the connection", _v9_tax_setup),
]


def applied_versions() -> set[int]:
    if not database.table_exists(SchemaVersion._meta.table_name):
        return set()
    return {row.version for row in SchemaVersion.select(SchemaVersion.version)}


def upgrade() -> list[str]:
    """Apply every step not yet recorded, in order, each in its own transaction; returns what was applied.

    By recorded version, not "above the highest": steps from branches merged in another order (a database
    that has 4-6 and then gains step 3) still run, and each step is idempotent."""
    database.create_tables([SchemaVersion], safe=True)
    applied = []
    have = applied_versions()
    for version, name, step in sorted(STEPS, key=lambda s: s[0]):
        if version in have:
            continue
        with database.atomic():
            step(database)
            SchemaVersion.create(version=version)
        applied.append(f"{version}: {name}")
    return applied
