"""The `ecomflux` console script: a Flask CLI group with the product's commands."""

from __future__ import annotations

import os
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from . import backfill_command, create_app, runtime
from .config import load_config
from .db import database
from .migrations import upgrade
from .models import QboConnection, Shop
from .staff import (StaffError, create_staff, disable_staff, enable_staff, generate_password, get_staff, list_staff,
                    live_sessions, remove_staff, reset_password, set_role)
from .sync.shop_settings import saved_values, shop_facts, shop_settings
from .sync.sweeper import sweep
from .translate.document_kinds import DOCUMENT_TYPES
from .translate.jsonout import dumps
from .translate.order import ShopFacts
from .translate.preview import preview_document, unwrap_order
from .translate.settings import SyncSettings, effective_settings
from .webserver import DEFAULT_THREADS, server_args
from workers.main import run_worker


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
    args = server_args("ecomflux_app.wsgi:app", host=host, port=port, workers=web_workers,
                       threads=threads or DEFAULT_THREADS)
    os.execvp(args[0], args)


@cli.command("sweep")
@with_appcontext
def sweep_cmd():
    """Re-enqueue deliveries whose job was lost (normally run by the worker's scheduler)."""
    with database.connection_context():
        count = sweep(runtime.redis(), current_app.config["SWEEP_AFTER_SECONDS"])
    click.echo(f"re-enqueued {count} deliveries")


@cli.command("dev")
@click.option("--port", default=8000, type=int)
@click.option("--no-worker", is_flag=True)
def dev_cmd(port: int, no_worker: bool):
    """Run everything locally: embedded Redis, SQLite, Shopify + Intuit sandboxes, web, worker."""
    from .devserver import run_dev  # the sandboxes and dev tooling load for the dev commands only

    run_dev(port=port, with_worker=not no_worker)


@cli.command("preview")
@click.argument("order_file", type=click.File("r"))
@click.option("--settings", "settings_file", type=click.File("r"), default=None,
              help="JSON file of shop settings (the /api/settings shape, may include \"company\").")
@click.option("--document-type", type=click.Choice(list(DOCUMENT_TYPES)), default=None)
@click.option("--timezone", "shop_timezone", default="UTC", help="Shop timezone (IANA name).")
@click.option("--shop-currency", default=None, help="Shop currency when the order omits it.")
@click.option("--shop", "shop_domain", default=None,
              help="Preview as this shop in the database would post: its saved settings (--settings and "
                   "--document-type override them), its QuickBooks company, timezone and currency.")
def preview_cmd(order_file, settings_file, document_type, shop_timezone, shop_currency, shop_domain):
    """Print the QBO document ORDER_FILE (a Shopify order JSON) would produce; posts nothing.

    Exit status 0 when the document balances to Shopify's total, 1 when it does not or the
    order cannot be translated, 2 for invalid settings.
    """
    import json

    values = json.load(settings_file) if settings_file else {}
    if document_type:
        values["document_type"] = document_type
    errors = SyncSettings.validate_values(values)
    if errors:
        click.echo(dumps({"ok": False, "settings_errors": errors}, indent=2))
        sys.exit(2)
    order = unwrap_order(json.load(order_file))
    if shop_domain:
        settings, facts = _shop_preview_settings(shop_domain, values)
    else:
        # No shop: the file says what the company is; the shop's currency stands in for what it does not.
        facts = ShopFacts(timezone=shop_timezone, currency=shop_currency or str(order.get("currency") or "USD"))
        settings = effective_settings(values, values.get("company"), shop_country=None, shop_currency=facts.currency)
    result = preview_document(order, settings, facts)
    click.echo(dumps(result, indent=2))
    sys.exit(0 if result.get("ok") else 1)


def _shop_preview_settings(shop_domain: str, overrides: dict):
    """A database shop's effective settings (as posting reads them, overrides applied) and its facts."""
    from flask.cli import ScriptInfo

    app = click.get_current_context().ensure_object(ScriptInfo).load_app()
    with app.app_context(), database.connection_context():
        shop = Shop.get_or_none(Shop.domain == shop_domain.lower())
        if shop is None:
            raise click.ClickException(f"no shop {shop_domain} in the database")
        values = dict(saved_values(shop), **{k: v for k, v in overrides.items() if k != "company"})
        return shop_settings(shop, QboConnection.get_or_none(QboConnection.shop == shop.id), values), shop_facts(shop)


@cli.group("staff")
def staff_group():
    """Support staff accounts: add, list, disable, enable, remove, role, reset-password (each audited)."""


def _actor() -> str:
    """Who ran the command, for the audit trail."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _staff_change(change, *args) -> None:
    """Run one staff change in a database connection; its StaffError becomes a one-line CLI error."""
    with database.connection_context():
        try:
            change(*args, actor=_actor())
        except StaffError as exc:
            raise click.ClickException(str(exc)) from None


def _new_password(password_stdin: bool, generate: bool) -> str:
    if generate:
        return generate_password()
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@staff_group.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(["viewer", "operator"]), default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--generate", is_flag=True, help="Generate a password and print it once.")
@with_appcontext
def staff_add(email: str, role: str, password_stdin: bool, generate: bool):
    """Create a staff account (password prompted, read from stdin, or generated)."""
    password = _new_password(password_stdin, generate)
    _staff_change(lambda actor: create_staff(email, password, role, actor=actor))
    click.echo(f"created {role} {email.strip().lower()}" + (f" with password: {password}" if generate else ""))


@staff_group.command("list")
@with_appcontext
def staff_list():
    """Every staff account: role, state, last sign-in, open sessions."""
    with database.connection_context():
        rows = [(u.email, u.role, "disabled" if u.disabled_at else "active",
                 u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never", str(live_sessions(u)))
                for u in list_staff()]
    if not rows:
        click.echo("no staff accounts (add one with: ecomflux staff add EMAIL --role operator)")
        return
    header = ("EMAIL", "ROLE", "STATE", "LAST SIGN-IN (UTC)", "SESSIONS")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())


@staff_group.command("disable")
@click.argument("email")
@with_appcontext
def staff_disable(email: str):
    """Stop an account from signing in and end its open sessions now."""
    _staff_change(disable_staff, email)
    click.echo(f"disabled {email.strip().lower()}; its sessions are ended")


@staff_group.command("enable")
@click.argument("email")
@with_appcontext
def staff_enable(email: str):
    """Let a disabled account sign in again."""
    _staff_change(enable_staff, email)
    click.echo(f"enabled {email.strip().lower()}")


@staff_group.command("remove")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def staff_remove(email: str, yes: bool):
    """Delete an account (its audit trail stays)."""
    if not yes:
        click.confirm(f"Remove the staff account {email.strip().lower()}?", abort=True)
    _staff_change(remove_staff, email)
    click.echo(f"removed {email.strip().lower()}")


@staff_group.command("role")
@click.argument("email")
@click.argument("role", type=click.Choice(["viewer", "operator"]))
@with_appcontext
def staff_role(email: str, role: str):
    """Change an account's role (its open sessions end: it signs in again under the new one)."""
    _staff_change(lambda address, actor: set_role(address, role, actor=actor), email)
    click.echo(f"{email.strip().lower()} is now {role}; its sessions are ended")


@staff_group.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@click.option("--generate", is_flag=True, help="Generate a password and print it once.")
@with_appcontext
def staff_reset_password(email: str, password_stdin: bool, generate: bool):
    """Set a new password (open sessions end)."""
    _staff_change(lambda address, actor: get_staff(address), email)  # unknown: say so before asking for one
    password = _new_password(password_stdin, generate)
    _staff_change(lambda address, actor: reset_password(address, password, actor=actor), email)
    click.echo(f"new password for {email.strip().lower()}" + (f": {password}" if generate else " set")
               + "; its sessions are ended")


@cli.command("dev-webhook")
@click.option("--topic", default="orders/fulfilled", show_default=True)
@click.option("--order", "order_name", default=None, help="Order name such as #1001 (default: the newest).")
@click.option("--duplicate", default=0, type=int, help="Send the same delivery id this many extra times.")
@click.option("--sandbox", default=None, help="Shopify sandbox URL (default: the running dev setup's).")
@click.option("--app-url", default=None, help="Where the app listens (default: APP_URL).")
def dev_webhook(topic: str, order_name: str | None, duplicate: int, sandbox: str | None, app_url: str | None):
    """Have the local Shopify sandbox sign and send a demo-order webhook to the running dev app."""
    import requests

    from .devserver import DEMO_SHOP  # the sandboxes and dev tooling load for the dev commands only

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
