"""Versioned schema steps for `ecomflux db upgrade`, portable across SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Callable

from .db import database
from .models import ALL_MODELS, SchemaVersion


def _v1_initial(db) -> None:
    db.create_tables([m for m in ALL_MODELS if m is not SchemaVersion], safe=True)


# Append new steps (playhouse.migrate operations) here; never edit an applied one.
STEPS: list[tuple[int, str, Callable]] = [
    (1, "initial schema", _v1_initial),
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
