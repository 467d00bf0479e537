"""The production server (`ecomflux web`, granian) serving the real app over HTTP: intake, health, shutdown."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ecomflux_app.models import Shop, WebhookDelivery
from ecomflux_app.sync.sweeper import queued_delivery_ids
from ecomflux_app.web.webhooks import RECONNECT_EVERY
from ecomflux_app.webserver import KILL_TIMEOUT_SECONDS
from tests.helpers import app_env, webhook_headers

SHOP = "served-shop.myshopify.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(app, tmp_path):
    """`ecomflux web` on a free port (2 processes x 8 threads), against the test database and Redis."""
    yield from _serve(app, tmp_path, {})


@pytest.fixture
def served_gathering(app, tmp_path):
    """The same server with a 50 ms gather window, so concurrent deliveries share group commits."""
    yield from _serve(app, tmp_path, {"ECOMFLUX_INTAKE_GATHER_MS": "50"})


def _serve(app, tmp_path, extra_env: dict):
    port = _free_port()
    log_path = tmp_path / "web.log"  # a file, not a pipe: nobody drains a pipe, and a full one blocks the server
    with open(log_path, "wb") as log_file:
        # Its own process group: teardown stops the server's worker processes too, not just its main one.
        proc = subprocess.Popen([sys.executable, "-m", "ecomflux_app.cli", "web", "--port", str(port), "--workers",
                                 "2", "--threads", "8"], env=dict(app_env(app), **extra_env), stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:  # poll until it accepts connections (or died)
        assert proc.poll() is None, log_path.read_text()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline, "ecomflux web did not start"
        time.sleep(0.05)
    yield port, proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=KILL_TIMEOUT_SECONDS + 20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
    except ProcessLookupError:
        pass
    proc.wait()


def _post(port: int, body: bytes, headers: dict, *, chunked: bool = False) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        if chunked:
            conn.request("POST", "/webhooks", body=iter([body[:10], body[10:]]), headers=headers, encode_chunked=True)
        else:
            conn.request("POST", "/webhooks", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_webhooks_over_http_land_once_and_health_answers(served, db, redis_conn):
    port, _ = served
    Shop.create(domain=SHOP, access_token="shpat_x")
    body = json.dumps({"id": 77, "name": "#1077"}).encode()
    headers = webhook_headers("orders/fulfilled", SHOP, body, webhook_id="served-1")

    status, answer = _post(port, body, headers)
    assert status == 200 and answer["status"] == "queued"
    assert _post(port, body, headers) == (200, {"status": "duplicate"})
    forged = dict(headers, **{"X-Shopify-Hmac-Sha256": "AAAA", "X-Shopify-Webhook-Id": "forged"})
    assert _post(port, body, forged)[0] == 401
    chunked = webhook_headers("orders/fulfilled", SHOP, body, webhook_id="served-chunked")
    assert _post(port, body, chunked, chunked=True)[0] == 200

    rows = {r.webhook_id: r for r in WebhookDelivery.select()}
    assert set(rows) == {"served-1", "served-chunked"}
    assert rows["served-1"].order_name == "#1077" and rows["served-1"].shop_id == Shop.get(domain=SHOP).id
    assert sorted(queued_delivery_ids(redis_conn, SHOP)) == sorted(r.id for r in rows.values())

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()


def test_concurrent_deliveries_over_http_each_land_once_then_sigterm_stops_it(served, db, redis_conn):
    port, proc = served
    Shop.create(domain=SHOP, access_token="shpat_x")

    def send(i: int) -> int:
        body = json.dumps({"id": 1000 + i % 60}).encode()
        return _post(port, body, webhook_headers("orders/fulfilled", SHOP, body, webhook_id=f"par-{i % 60}"))[0]

    with ThreadPoolExecutor(max_workers=40) as pool:
        assert list(pool.map(send, range(120))) == [200] * 120
    assert WebhookDelivery.select().count() == 60
    assert sorted(queued_delivery_ids(redis_conn, SHOP)) == sorted(r.id for r in WebhookDelivery.select())

    proc.send_signal(signal.SIGTERM)
    # granian drains its workers and exits cleanly; a worker still booting is killed after the kill timeout.
    assert proc.wait(timeout=KILL_TIMEOUT_SECONDS + 20) == 0


def test_every_nth_webhook_answer_asks_the_sender_to_reconnect(served, db):
    """Persistent connections are rotated so they spread over the server's processes (RECONNECT_EVERY)."""
    port, _ = served
    Shop.create(domain=SHOP, access_token="shpat_x")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    closes, local_ports = [], set()
    for i in range(1, 2 * RECONNECT_EVERY + 1):
        body = json.dumps({"id": 5000 + i}).encode()
        conn.request("POST", "/webhooks", body=body, headers=webhook_headers("orders/fulfilled", SHOP, body, webhook_id=f"rot-{i}"))
        local_ports.add(conn.sock.getsockname()[1])
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        resp.read()
        if resp.getheader("Connection", "").lower() == "close":
            closes.append(i)
    conn.close()
    # Each process counts its own answers from the start, so one sequential sender sees the close
    # on every RECONNECT_EVERY-th answer, whichever process each new connection reaches.
    assert closes == [RECONNECT_EVERY, 2 * RECONNECT_EVERY]
    assert len(local_ports) == 2  # the client reconnected after the first close (the second ends the run)
    assert WebhookDelivery.select().count() == 2 * RECONNECT_EVERY


# Validly signed bodies that once broke a group commit, or a decoder: each must be stored (its exact
# bytes kept when text cannot hold them) or flagged, answered 200, and cost its neighbours nothing.
POISON = {
    "lone-surrogate": b'{"id": 9001, "name": "#\\ud800", "note": "x"}',
    "surrogate-key": b'{"id": 9002, "\\udfff": 1}',
    "escaped-nul": b'{"id": 9003, "name": "#\\u0000"}',
    "raw-nul": b'{"id": 9004, "note": "a\x00b"}',
    "invalid-utf8": b'{"id": 9005, "name": "\xff\xfe"}',
    "utf8-surrogate": b'{"id": 9006, "name": "\xed\xa0\x80"}',
    "deep-nesting": b'{"id": 9007, "x": ' + b"[" * 200000 + b"]" * 200000 + b"}",
    "huge-integer": b'{"id": ' + b"9" * 5000 + b"}",
    "huge-float": b'{"id": 9009, "total": 1e999}',
    "array": b"[1, 2, 3]",
    "string": b'"\\ud800"',
}


def test_a_poison_delivery_never_fails_the_neighbours_of_its_group_commit(served_gathering, db, redis_conn):
    """Poison bodies among good deliveries, all at once through the real server and its group commit:
    every delivery is answered 200 and stored; good rows are queued and enqueued, poison is kept."""
    port, _ = served_gathering
    Shop.create(domain=SHOP, access_token="shpat_x")
    sends = [(f"good-{i}", json.dumps({"id": 100 + i, "name": f"#{100 + i}"}).encode()) for i in range(60)]
    sends += [(f"{name}-{n}", body) for n in range(3) for name, body in POISON.items()]
    random.Random(7).shuffle(sends)

    def send(item):
        wid, body = item
        return wid, _post(port, body, webhook_headers("orders/fulfilled", SHOP, body, webhook_id=wid))

    with ThreadPoolExecutor(max_workers=len(sends)) as pool:
        answers = dict(pool.map(send, sends))
    assert {wid: status for wid, (status, _) in answers.items() if status != 200} == {}

    rows = {r.webhook_id: r for r in WebhookDelivery.select()}
    assert set(rows) == set(answers)
    good = [wid for wid in rows if wid.startswith("good-")]
    assert {(rows[w].status, rows[w].order_name) for w in good} == {("queued", f"#{rows[w].order_id}") for w in good}
    assert set(queued_delivery_ids(redis_conn, SHOP)) >= {rows[w].id for w in good}
    for wid, body in sends:
        row, (_, answer) = rows[wid], answers[wid]
        # The exact bytes are there: the text itself, or the raw bytes beside a readable copy.
        stored = bytes(row.raw_body) if row.raw_body is not None else row.body.encode()
        assert stored == body, wid
        assert answer["status"] == row.status and answer["id"] == row.id
        if row.status == "failed":
            assert answer["reason"] == row.error
    statuses = {name: {rows[f"{name}-{n}"].status for n in range(3)} for name in POISON}
    assert statuses == {
        "lone-surrogate": {"queued"}, "surrogate-key": {"queued"}, "escaped-nul": {"queued"}, "raw-nul": {"failed"},
        "invalid-utf8": {"failed"}, "utf8-surrogate": {"queued"}, "deep-nesting": {"failed"},
        "huge-integer": {"failed"}, "huge-float": {"queued"}, "array": {"failed"}, "string": {"failed"},
    }
    assert rows["lone-surrogate-0"].order_name == "#\ufffd" and rows["escaped-nul-0"].order_name == "#\ufffd"
