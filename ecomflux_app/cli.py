"""The `ecomflux` console script: a Flask CLI group with the product's commands."""

from __future__ import annotations

import os
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from . import create_app


def _make_app(*_args, **_kwargs):
    return create_app()


@click.group(cls=FlaskGroup, create_app=_make_app, add_default_commands=False, add_version_option=False)
def cli():
    """EcomFlux: Shopify orders into QuickBooks Online."""


@cli.group("db")
def db_group():
    """Database schema commands."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade():
    """Apply pending schema migrations (SQLite and PostgreSQL)."""
    from .db import database
    from .migrations import upgrade

    with database.connection_context():
        applied = upgrade()
    click.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


@cli.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--name", default=None, help="Worker name (unique per machine).")
@click.option("--fork", is_flag=True,
              help="Fork a work horse per job (isolation from crashing jobs, at ~20% of throughput); by default "
                   "jobs run in this process and a worker that dies is covered by leases and the sweeper.")
@with_appcontext
def worker_cmd(burst: bool, name: str | None, fork: bool):
    """Run a fair per-shop RQ worker with the periodic scheduler."""
    from workers.main import run_worker

    run_worker(burst=burst, name=name, simple=not fork)


@cli.command("web")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8000, type=int)
@click.option("--workers", "web_workers", type=int, envvar="WEB_CONCURRENCY", default=None,
              help="server worker processes (default: WEB_CONCURRENCY, else two per core)")
@click.option("--threads", default=None, type=int, envvar="WEB_THREADS",
              help="request threads per process (default: WEB_THREADS, else 32): concurrent webhooks share group commits")
def web_cmd(host: str, port: int, web_workers: int | None, threads: int | None):
    """Serve the app with granian (the production server)."""
    from .webserver import DEFAULT_THREADS, server_args

    args = server_args("ecomflux_app.wsgi:app", host=host, port=port, workers=web_workers,
                       threads=threads or DEFAULT_THREADS)
    os.execvp(args[0], args)


@cli.command("sweep")
@with_appcontext
def sweep_cmd():
    """Re-enqueue deliveries whose job was lost (normally run by the worker's scheduler)."""
    from . import runtime
    from .db import database
    from .sync.sweeper import sweep

    with database.connection_context():
        count = sweep(runtime.redis(), current_app.config["SWEEP_AFTER_SECONDS"])
    click.echo(f"re-enqueued {count} deliveries")


@cli.command("dev")
@click.option("--port", default=8000, type=int)
@click.option("--no-worker", is_flag=True)
def dev_cmd(port: int, no_worker: bool):
    """Run everything locally: embedded Redis, SQLite, Shopify + Intuit sandboxes, web, worker."""
    from .devserver import run_dev

    run_dev(port=port, with_worker=not no_worker)


@cli.command("preview")
@click.argument("order_file", type=click.File("r"))
@click.option("--settings", "settings_file", type=click.File("r"), default=None,
              help="JSON file of shop settings (the /api/settings shape, may include \"company\").")
@click.option("--document-type", type=click.Choice(["sales_receipt", "invoice"]), default=None)
@click.option("--timezone", "shop_timezone", default="UTC", help="Shop timezone (IANA name).")
@click.option("--shop-currency", default=None, help="Shop currency when the order omits it.")
def preview_cmd(order_file, settings_file, document_type, shop_timezone, shop_currency):
    """Print the QBO document ORDER_FILE (a Shopify order JSON) would produce; posts nothing.

    Exit status 0 when the document balances to Shopify's total, 1 when it does not or the
    order cannot be translated, 2 for invalid settings.
    """
    import json

    from .translate.jsonout import dumps
    from .translate.order import ShopFacts
    from .translate.preview import preview_document, unwrap_order
    from .translate.settings import SyncSettings

    values = json.load(settings_file) if settings_file else {}
    if document_type:
        values["document_type"] = document_type
    errors = SyncSettings.validate_values(values)
    if errors:
        click.echo(dumps({"ok": False, "settings_errors": errors}, indent=2))
        sys.exit(2)
    order = unwrap_order(json.load(order_file))
    facts = ShopFacts(timezone=shop_timezone, currency=shop_currency or str(order.get("currency") or "USD"))
    result = preview_document(order, SyncSettings.from_values(values), facts)
    click.echo(dumps(result, indent=2))
    sys.exit(0 if result.get("ok") else 1)


@cli.group("staff")
def staff_group():
    """Support staff accounts."""


@staff_group.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(["viewer", "operator"]), default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--generate", is_flag=True, help="Generate a password and print it once.")
@with_appcontext
def staff_add(email: str, role: str, password_stdin: bool, generate: bool):
    """Create a staff account (password prompted, read from stdin, or generated)."""
    from .db import database
    from .staff import create_staff, generate_password

    if generate:
        password = generate_password()
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with database.connection_context():
        try:
            create_staff(email, password, role)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"created {role} {email.strip().lower()}" + (f" with password: {password}" if generate else ""))


@cli.command("dev-webhook")
@click.option("--topic", default="orders/fulfilled", show_default=True)
@click.option("--order", "order_name", default=None, help="Order name such as #1001 (default: the newest).")
@click.option("--duplicate", default=0, type=int, help="Send the same delivery id this many extra times.")
@click.option("--sandbox", default=None, help="Shopify sandbox URL (default: the running dev setup's).")
@click.option("--app-url", default=None, help="Where the app listens (default: APP_URL).")
def dev_webhook(topic: str, order_name: str | None, duplicate: int, sandbox: str | None, app_url: str | None):
    """Have the local Shopify sandbox sign and send a demo-order webhook to the running dev app."""
    import requests

    from .config import load_config
    from .devserver import DEMO_SHOP

    cfg = load_config()  # beside `make dev`: its sandbox and app URLs (instance/dev-environment.json)
    base = cfg["SHOPIFY_SHOP_BASE_URL"]
    sandbox = (sandbox or (base[:-len("/{shop}")] if base.endswith("/{shop}") else "http://127.0.0.1:8001")).rstrip("/")
    app_url = (app_url or cfg["APP_URL"]).rstrip("/")
    orders = requests.get(f"{sandbox}/_sandbox/shops/{DEMO_SHOP}/orders", timeout=10).json()["orders"]
    if not orders:
        raise click.ClickException("the sandbox has no demo orders: is `ecomflux dev` running?")
    chosen = next((o for o in orders if o.get("name") == order_name), None) if order_name else orders[-1]
    if chosen is None:
        raise click.ClickException(f"no order named {order_name}")
    resp = requests.post(f"{sandbox}/_sandbox/webhooks", json={
        "target": f"{app_url}/webhooks", "shop": DEMO_SHOP, "topic": topic, "payload": chosen,
        "duplicate": duplicate}, timeout=30)
    resp.raise_for_status()
    for result in resp.json()["results"]:
        click.echo(f"{topic} {chosen.get('name')} -> {result}")


@cli.command("backfill")
@click.option("--shop", "shop_domain", required=True, help="The shop's myshopify domain.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="First day (YYYY-MM-DD); required to start a run, not in the future.")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Last day (inclusive).")
@click.option("--resume", "resume_id", type=int, default=None,
              help="Continue this run from its cursor (one whose process died, paused or failed).")
@click.option("--cancel", "cancel_id", type=int, default=None, help="Stop this run for good.")
@with_appcontext
def backfill_cmd(shop_domain: str, since, until, resume_id: int | None, cancel_id: int | None):
    """Post a shop's historical orders into QuickBooks, exactly once, with a progress bar.

    Uses the app's configuration; beside `make dev` (no DATABASE_URL set) that is the running dev
    setup's sandboxes and Redis, read from instance/dev-environment.json."""
    from . import backfill_command
    from .db import database
    from .models import Shop

    with database.connection_context():
        shop = Shop.get_or_none(Shop.domain == shop_domain)
        if shop is None:
            raise click.ClickException(f"unknown shop {shop_domain}")
        if cancel_id is not None:
            backfill_command.cancel(shop, cancel_id)
            return
        backfill_command.run(shop, since.date() if since else None, until.date() if until else None, resume_id)


def main() -> None:
    cli(prog_name="ecomflux")


if __name__ == "__main__":
    main()
