"""`ecomflux dev`: the whole product on one machine with no internet and no services installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click

from . import create_app
from .config import DEV_ENVIRONMENT_FILE, load_config, write_dev_environment
from .db import database
from .devseed import seed_demo
from .migrations import upgrade
from .work_queue import redis_url, stop_embedded_redis
from .sandbox.intuit_server import create_intuit_sandbox
from .sandbox.persistence import persist_intuit, persist_shopify
from .sandbox.serving import BackgroundServer
from .sandbox.shopify_server import create_shopify_sandbox

SHOPIFY_SANDBOX_PORT = 8001
INTUIT_SANDBOX_PORT = 8002
DEMO_SHOP = "demo-shop.myshopify.com"
DEV_INTUIT_VERIFIER_TOKEN = "ecomflux-dev-intuit-verifier-3c81"


def _start_sandboxes(config: dict, instance: Path) -> dict:
    """Serve the Shopify and Intuit stand-ins on loopback ports, their data kept in instance/ across
    restarts (the linked company and tokens survive); returns the env that points at them."""
    shopify = create_shopify_sandbox(config["SHOPIFY_API_KEY"], config["SHOPIFY_API_SECRET"])
    intuit = create_intuit_sandbox(config["INTUIT_CLIENT_ID"], config["INTUIT_CLIENT_SECRET"])
    keepers = (persist_shopify(shopify, instance / "sandbox-shopify.state"),
               persist_intuit(intuit, instance / "sandbox-intuit.state"))
    ports = os.environ.get("ECOMFLUX_DEV_SANDBOX_PORTS", f"{SHOPIFY_SANDBOX_PORT},{INTUIT_SANDBOX_PORT}")
    shopify_port, intuit_port = (int(p) for p in ports.split(","))
    shopify_srv = BackgroundServer(shopify, port=shopify_port).start()
    intuit_srv = BackgroundServer(intuit, port=intuit_port).start()
    # QuickBooks change notifications: the Intuit sandbox signs them with the app's verifier token
    # and posts them to the app every two seconds, as Intuit's sandbox does "near real time".
    verifier = config.get("INTUIT_WEBHOOK_VERIFIER_TOKEN") or DEV_INTUIT_VERIFIER_TOKEN
    intuit.sandbox.verifier_token = verifier
    intuit.sandbox.notification_target = f"{config['APP_URL']}/qbo/notifications"
    intuit.sandbox.start_notifier(2.0)
    return {
        "_keepers": keepers,
        "INTUIT_WEBHOOK_VERIFIER_TOKEN": verifier,
        "SHOPIFY_SHOP_BASE_URL": f"{shopify_srv.url}/{{shop}}",
        "INTUIT_ENVIRONMENT": f"{intuit_srv.url}/.well-known/openid_configuration",
        "QBO_API_BASE_URL": f"{intuit_srv.url}/v3",
        "_SHOPIFY_SANDBOX_URL": shopify_srv.url,
        "_INTUIT_SANDBOX_URL": intuit_srv.url,
        "_apps": (shopify, intuit),
    }


def run_dev(port: int = 8000, with_worker: bool = True) -> None:
    """Start embedded Redis, sandboxes, migrations, demo data, a worker process and the web server."""
    os.environ["ECOMFLUX_DEV"] = "1"
    os.environ.setdefault("APP_URL", f"http://127.0.0.1:{port}")
    instance = Path(os.environ.get("ECOMFLUX_INSTANCE") or Path.cwd() / "instance")
    os.environ["ECOMFLUX_INSTANCE"] = str(instance)

    # What a previous run wrote down describes sandboxes and a Redis that are gone: rebuilt below.
    (instance / DEV_ENVIRONMENT_FILE).unlink(missing_ok=True)
    config = load_config()
    redis_url(config)  # starts the embedded Redis unless REDIS_URL is set; exports REDIS_URL
    sandbox = _start_sandboxes(config, instance)
    for key, value in sandbox.items():
        if not key.startswith("_"):
            os.environ[key] = value
    # `ecomflux backfill` and the other commands run in another shell read this: same sandboxes, same Redis.
    write_dev_environment(instance, os.environ)

    app = create_app()
    with database.connection_context():
        upgrade()
        summary = seed_demo(app.config, sandbox["_apps"], DEMO_SHOP)
    for keeper in sandbox["_keepers"]:
        keeper.save()  # the seed changed the sandboxes in-process

    worker = None
    if with_worker:
        worker = subprocess.Popen([sys.executable, "-m", "ecomflux_app.cli", "worker", "--name", f"dev-{os.getpid()}"],
                                  env=os.environ.copy())

    url = f"{app.config['APP_URL']}/dev"
    click.echo("")
    click.echo("EcomFlux is running (SQLite, embedded Redis, local Shopify + Intuit sandboxes).")
    click.echo(f"  Open:            {url}")
    click.echo(f"  Support console: {app.config['APP_URL']}/support  ({summary.get('staff', 'see README')})")
    click.echo(f"  Shopify sandbox: {sandbox['_SHOPIFY_SANDBOX_URL']}   Intuit sandbox: {sandbox['_INTUIT_SANDBOX_URL']}")
    click.echo(f"  Database:        {app.config['DATABASE_URL']}")
    click.echo(f"  Demo shop:       {DEMO_SHOP} ({summary.get('orders', 0)} demo orders in the Shopify sandbox)")
    click.echo("  Send a signed test webhook:  .venv/bin/ecomflux dev-webhook")
    click.echo("")

    def _stop(*_args):
        if worker and worker.poll() is None:
            worker.terminate()
            # The worker is a client of the embedded Redis: let it go first.
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
        for keeper in sandbox["_keepers"]:
            keeper.close()
        stop_embedded_redis()
        sys.exit(0)

    signal.signal(signal.SIGTERM, _stop)
    try:
        # Not app.run(): Flask refuses to block inside its own CLI process.
        from werkzeug.serving import run_simple

        run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)
    finally:
        _stop()
