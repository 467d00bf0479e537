"""The dev loop as a developer runs it: `ecomflux dev` in one shell, `ecomflux backfill` in another, restarts.

Each test starts the real `ecomflux dev` (SQLite and embedded Redis under a fresh instance/, the
sandboxes on free ports) in a subprocess with a developer's bare environment: nothing of the test
suite's configuration reaches it or the commands run beside it.
"""

from __future__ import annotations

import html
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

DEMO_SHOP = "demo-shop.myshopify.com"
CONFIG_KEYS = ("DATABASE_URL", "REDIS_URL", "SHOPIFY_SHOP_BASE_URL", "INTUIT_ENVIRONMENT", "QBO_API_BASE_URL",
               "APP_URL", "SECRET_KEY", "ENCRYPTION_KEYS", "ECOMFLUX_INSTANCE", "ECOMFLUX_DEV",
               "ECOMFLUX_DEV_SANDBOX_PORTS", "SHOPIFY_API_KEY", "SHOPIFY_API_SECRET", "INTUIT_CLIENT_ID",
               "INTUIT_CLIENT_SECRET")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _shell_env(instance: Path, **extra) -> dict:
    """A developer's shell: none of the app's variables set, only where its instance/ is."""
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_KEYS}
    env["ECOMFLUX_INSTANCE"] = str(instance)
    env.update(extra)
    return env


class Dev:
    """`ecomflux dev --no-worker` on free ports; restartable on the same instance/."""

    def __init__(self, instance: Path):
        self.instance = instance
        self.port, self.shopify_port, self.intuit_port = _free_port(), _free_port(), _free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.shopify = f"http://127.0.0.1:{self.shopify_port}"

    def start(self) -> "Dev":
        log = open(self.instance / "dev.log", "ab")
        env = _shell_env(self.instance, ECOMFLUX_DEV_SANDBOX_PORTS=f"{self.shopify_port},{self.intuit_port}")
        self.proc = subprocess.Popen([sys.executable, "-m", "ecomflux_app.cli", "dev", "--port", str(self.port),
                                      "--no-worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.instance.parent)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.instance / "dev.log").read_text()[-3000:]
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("ecomflux dev did not come up: " + (self.instance / "dev.log").read_text()[-3000:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def headers(self) -> dict:
        token = requests.post(f"{self.shopify}/_sandbox/shops/{DEMO_SHOP}/session_token", json={"expires_in": 300},
                              timeout=10).json()["session_token"]
        return {"Authorization": f"Bearer {token}"}

    def status(self) -> dict:
        return requests.get(f"{self.url}/api/status", headers=self.headers(), timeout=30).json()["qbo"]

    def connect_quickbooks(self) -> None:
        """What the admin does: Connect on the page, approve at Intuit (the sandbox's consent form)."""
        browser = requests.Session()
        start = browser.post(f"{self.url}/api/qbo/connect", json={}, headers=self.headers(), timeout=30)
        assert start.status_code == 200, start.text
        consent = browser.get(start.json()["authorize_url"], timeout=30)
        form = {name: html.unescape(value) for name, value in
                re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text)}
        form["realm"] = re.search(r'name="realm" value="([^"]+)"', consent.text).group(1)
        form["decision"] = "approve"
        action = consent.url.split("/connect/oauth2")[0] + "/connect/oauth2/decide"
        browser.post(action, data=form, timeout=30)
        assert self.status()["state"] == "connected"


def backfill(instance: Path, *args: str) -> subprocess.CompletedProcess:
    """`ecomflux backfill` from another shell beside the running dev setup."""
    return subprocess.run([sys.executable, "-m", "ecomflux_app.cli", "backfill", "--shop", DEMO_SHOP, *args],
                          env=_shell_env(instance), cwd=instance.parent, capture_output=True, text=True, timeout=120)


@pytest.fixture
def dev(tmp_path):
    server = Dev(tmp_path / "instance")
    server.instance.mkdir()
    yield server
    server.stop()


def test_backfill_beside_make_dev_uses_its_sandboxes_refuses_the_future_and_fails_fast_without_it(dev):
    dev.start()
    dev.connect_quickbooks()
    since = (date.today() - timedelta(days=10)).isoformat()

    sent = subprocess.run([sys.executable, "-m", "ecomflux_app.cli", "dev-webhook", "--order", "#1001"],
                          env=_shell_env(dev.instance), cwd=dev.instance.parent, capture_output=True, text=True,
                          timeout=60)
    assert sent.returncode == 0 and "orders/fulfilled #1001 -> " in sent.stdout, sent.stdout + sent.stderr

    future = backfill(dev.instance, "--since", (date.today() + timedelta(days=2)).isoformat())
    assert future.returncode != 0 and "in the future" in future.stderr

    first = backfill(dev.instance, "--since", since)
    assert first.returncode == 0, first.stdout + first.stderr
    read, posted = map(int, re.search(r"done; (\d+) orders read, (\d+) posted", first.stdout).groups())
    assert read == 30 and posted > 0  # the demo shop's orders, from the dev setup's Shopify sandbox

    dev.stop()
    down = backfill(dev.instance, "--since", since)  # no dev running: its Shopify sandbox does not answer
    assert down.returncode == 1
    assert "unreachable" in down.stderr and "make dev" in down.stderr and "nothing was imported" in down.stderr


def test_a_restarted_dev_setup_keeps_its_company_and_says_reconnect_when_the_company_is_gone(dev):
    dev.start()
    dev.connect_quickbooks()
    since = (date.today() - timedelta(days=10)).isoformat()
    first = backfill(dev.instance, "--since", since)
    assert first.returncode == 0, first.stdout + first.stderr

    dev.stop()
    dev.start()  # the sandboxes come back with the company, its documents and the tokens
    assert dev.status()["state"] == "connected" and dev.status()["problem"] is None
    again = backfill(dev.instance, "--since", since)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "done; 30 orders read, 0 posted" in again.stdout  # all there already: QuickBooks kept them

    dev.stop()
    (dev.instance / "sandbox-intuit.state").unlink()  # Intuit no longer knows the company
    dev.start()
    qbo = dev.status()
    assert qbo["state"] == "reconnect_required" and not qbo["connected"]
    assert "reconnect" in qbo["reason"].lower()
