"""Database binding: one peewee proxy, opened from DATABASE_URL (SQLite or PostgreSQL), and the intake writer's own."""

from __future__ import annotations

from urllib.parse import urlparse

import peewee
try:
    import psycopg  # the intake writer's driver on PostgreSQL; without it, psycopg2 serves the intake too
except ImportError:
    psycopg = None
from peewee import DatabaseProxy, PostgresqlDatabase, Psycopg3Adapter, SqliteDatabase
from playhouse.db_url import connect
from playhouse.pool import PooledPostgresqlDatabase

database = DatabaseProxy()


class CheckedPooledPostgresqlDatabase(PooledPostgresqlDatabase):
    """A pool that never hands out a connection the server has dropped (restart, failover, idle kill)."""

    def _is_closed(self, conn):
        if super()._is_closed(conn):
            return True
        try:
            with conn.cursor() as cursor:  # one cheap round trip per checkout, not per query
                cursor.execute("SELECT 1")
            return False
        except Exception:
            return True


def open_database(url: str):
    """Create the peewee database for a URL and bind the proxy to it."""
    parsed = urlparse(url)
    if parsed.scheme in ("postgres", "postgresql"):
        db = CheckedPooledPostgresqlDatabase(
            parsed.path.lstrip("/"),
            user=parsed.username or None,
            password=parsed.password or None,
            host=parsed.hostname or None,
            port=parsed.port or 5432,
            max_connections=64,
            stale_timeout=300,
            timeout=10,
            autoconnect=True,
        )
    elif parsed.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parsed.path
        # WAL + busy_timeout: web and worker processes write the same file concurrently.
        db = SqliteDatabase(
            path or ":memory:",
            pragmas={"journal_mode": "wal", "busy_timeout": 10000, "foreign_keys": 1, "synchronous": "normal"},
            timeout=10,
        )
    else:
        db = connect(url)
    database.initialize(db)
    return db


def is_postgres() -> bool:
    return isinstance(database.obj, PooledPostgresqlDatabase)


_intake: tuple[object, object] | None = None  # (the database it was made for, the intake's own)


def intake_database():
    """The database the webhook intake writer uses: on PostgreSQL with psycopg 3 installed, a connection
    of its own through psycopg 3 (binary parameters: a body goes to the server as its bytes, where
    psycopg2 quotes it into the statement text for the server to lex again); else the shared one."""
    global _intake
    bound = database.obj
    if _intake is None or _intake[0] is not bound:
        own = bound
        if isinstance(bound, PooledPostgresqlDatabase) and psycopg3_installed():
            own = PostgresqlDatabase(bound.database, prefer_psycopg3=True, autoconnect=True, **bound.connect_params)
        _intake = (bound, own)
    return _intake[1]


def psycopg3_installed() -> bool:
    return psycopg is not None


def execute_numbered(db, sql: str, params: list):
    """Run a statement written with PostgreSQL's own $1..$n placeholders through psycopg 3's RawCursor
    (on a database that binds_binary()): it goes to the server as written; errors come out as peewee's.

    psycopg 3 turns %s/%b placeholders into $n by scanning the statement, and remembers the result
    only for statements under 4 KB and 50 parameters: the intake's multi-row INSERT (18 parameters a
    row) was scanned on every group commit, the largest single cost in the web processes (py-spy,
    14.5 KB bodies: 29% of the GIL's samples)."""
    with peewee.__exception_wrapper__:
        cursor = psycopg.RawCursor(db.connection())
        cursor.execute(sql, params)
    return cursor


def binds_binary(db) -> bool:
    """Whether the database's driver takes binary parameters (psycopg 3's %b placeholders)."""
    return isinstance(getattr(db, "_adapter", None), Psycopg3Adapter)
