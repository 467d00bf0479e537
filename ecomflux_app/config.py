"""The configuration contract: environment variables in, one plain dict of settings out."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Mapping

from cryptography.fernet import Fernet

# Sandbox credentials used only when the variables are unset (dev and tests); the local
# Shopify and Intuit stand-ins are started with the same values.
DEV_SHOPIFY_API_KEY = "ecomflux-dev-api-key"
DEV_SHOPIFY_API_SECRET = "ecomflux-dev-api-secret-0f3a9c27d1b84e6a"  # >= 32 bytes for HS256
DEV_INTUIT_CLIENT_ID = "ecomflux-dev-intuit-client"
DEV_INTUIT_CLIENT_SECRET = "ecomflux-dev-intuit-secret-7b2e41d09a6c"

# The one place the Shopify Admin API version is pinned (shopify.app.toml's [webhooks] api_version
# must name the same; a test checks). Shopify supports a version for 12 months: /healthz and the
# support console warn 90 days before this one leaves support.
SHOPIFY_API_VERSION = "2026-10"
# Stable versions are named by quarter (the calendar they follow is in shopify/api_versions.py).
SHOPIFY_API_VERSION_RE = re.compile(r"^(\d{4})-(01|04|07|10)$")
SHOPIFY_SCOPES = "read_orders,read_all_orders,read_customers,read_products,read_fulfillments,read_shopify_payments_payouts"
QBO_MINOR_VERSION = "75"
QBO_SCOPE = "com.intuit.quickbooks.accounting"

INTUIT_DISCOVERY = {
    "sandbox": "https://developer.api.intuit.com/.well-known/openid_sandbox_configuration",
    "production": "https://developer.api.intuit.com/.well-known/openid_configuration",
}
QBO_API_BASES = {
    "sandbox": "https://sandbox-quickbooks.api.intuit.com/v3",
    "production": "https://quickbooks.api.intuit.com/v3",
}



def parse_api_version(version: str) -> tuple[int, int]:
    """(year, month) of a stable Shopify API version name; ValueError for anything else."""
    match = SHOPIFY_API_VERSION_RE.match(version or "")
    if not match:
        raise ValueError(f"Shopify API version must be YYYY-01, -04, -07 or -10, not {version!r}")
    return int(match.group(1)), int(match.group(2))

def _instance_secret(instance: Path, name: str, make) -> str:
    """Read a dev secret from instance/, creating it on first use so restarts keep it."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


DEV_ENVIRONMENT_FILE = "dev-environment.json"
# What `ecomflux dev` sets for its own processes and writes down for other commands on the same instance.
DEV_ENVIRONMENT_KEYS = ("SHOPIFY_SHOP_BASE_URL", "INTUIT_ENVIRONMENT", "QBO_API_BASE_URL", "REDIS_URL", "APP_URL",
                        "ECOMFLUX_DEV")


def write_dev_environment(instance: Path, values: Mapping[str, str]) -> Path:
    """Record the running dev setup (sandbox URLs, embedded Redis) so other commands use the same."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / DEV_ENVIRONMENT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: str(values[k]) for k in DEV_ENVIRONMENT_KEYS if values.get(k)}, indent=2))
    tmp.replace(path)
    return path


def dev_environment(instance: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The dev setup's settings, for a command run against the dev database (no DATABASE_URL given);
    an embedded Redis whose socket is gone (dev stopped) is left out, so the command starts its own."""
    path = instance / DEV_ENVIRONMENT_FILE
    if env.get("DATABASE_URL") or not path.is_file():
        return {}
    try:
        values = {k: str(v) for k, v in json.loads(path.read_text()).items() if k in DEV_ENVIRONMENT_KEYS}
    except (OSError, ValueError, AttributeError):
        return {}
    redis = values.get("REDIS_URL", "")
    if redis.startswith("unix://") and not Path(redis[len("unix://"):]).exists():
        values.pop("REDIS_URL")
    return values


def load_config(env: Mapping[str, str] | None = None, instance_path: str | os.PathLike | None = None) -> dict:
    """Build the app settings from the environment, filling dev defaults under instance/ (and, for
    commands run beside `ecomflux dev` on its database, the sandbox URLs and Redis it runs with)."""
    env = os.environ if env is None else env
    instance = Path(instance_path or env.get("ECOMFLUX_INSTANCE") or Path.cwd() / "instance").resolve()
    dev = dev_environment(instance, env)

    def get(name: str, default: str | None = None) -> str | None:
        value = env.get(name)
        if value in (None, ""):
            value = dev.get(name)
        return value if value not in (None, "") else default

    intuit_env = get("INTUIT_ENVIRONMENT", "sandbox")
    if intuit_env.startswith("http"):
        discovery_url = intuit_env
        qbo_default = None
    else:
        if intuit_env not in INTUIT_DISCOVERY:
            raise ValueError(f"INTUIT_ENVIRONMENT must be sandbox, production or a URL, not {intuit_env!r}")
        discovery_url = INTUIT_DISCOVERY[intuit_env]
        qbo_default = QBO_API_BASES[intuit_env]
    qbo_base = get("QBO_API_BASE_URL", qbo_default)
    if not qbo_base:
        raise ValueError("QBO_API_BASE_URL is required when INTUIT_ENVIRONMENT is a discovery URL")

    keys = get("ENCRYPTION_KEYS") or _instance_secret(
        instance, "encryption.keys", lambda: Fernet.generate_key().decode()
    )
    old_secret = get("SHOPIFY_API_SECRET_OLD")
    api_version = get("SHOPIFY_API_VERSION", SHOPIFY_API_VERSION)
    parse_api_version(api_version)  # a typo must fail at start, not as Shopify's silent fallback
    return {
        "INSTANCE_PATH": str(instance),
        "SHOPIFY_API_KEY": get("SHOPIFY_API_KEY", DEV_SHOPIFY_API_KEY),
        "SHOPIFY_API_SECRET": get("SHOPIFY_API_SECRET", DEV_SHOPIFY_API_SECRET),
        "SHOPIFY_API_SECRET_OLD": old_secret,
        "SHOPIFY_API_VERSION": api_version,
        "SHOPIFY_SCOPES": get("SHOPIFY_SCOPES", SHOPIFY_SCOPES),
        "APP_URL": get("APP_URL", "http://127.0.0.1:8000").rstrip("/"),
        "SHOPIFY_SHOP_BASE_URL": get("SHOPIFY_SHOP_BASE_URL", "https://{shop}").rstrip("/"),
        "INTUIT_CLIENT_ID": get("INTUIT_CLIENT_ID", DEV_INTUIT_CLIENT_ID),
        "INTUIT_CLIENT_SECRET": get("INTUIT_CLIENT_SECRET", DEV_INTUIT_CLIENT_SECRET),
        "INTUIT_ENVIRONMENT": intuit_env,
        "INTUIT_DISCOVERY_URL": discovery_url,
        "QBO_API_BASE_URL": qbo_base.rstrip("/"),
        "QBO_MINOR_VERSION": get("QBO_MINOR_VERSION", QBO_MINOR_VERSION),
        # Intuit's webhook verifier token: set, change notifications keep the customer and item
        # directories current (no polling); unset, each directory is polled with a change query.
        "INTUIT_WEBHOOK_VERIFIER_TOKEN": get("INTUIT_WEBHOOK_VERIFIER_TOKEN"),
        "DATABASE_URL": get("DATABASE_URL", f"sqlite:///{instance / 'ecomflux.db'}"),
        "REDIS_URL": get("REDIS_URL"),
        "SECRET_KEY": get("SECRET_KEY") or _instance_secret(instance, "secret.key", lambda: secrets.token_hex(32)),
        "ENCRYPTION_KEYS": [k.strip() for k in keys.split(",") if k.strip()],
        # Sweeper: a row still "received"/"queued" this long after its last enqueue is re-enqueued.
        "SWEEP_AFTER_SECONDS": int(get("ECOMFLUX_SWEEP_AFTER_SECONDS", "60")),
        # Intake group commit: under load, wait this long for more deliveries to share a commit.
        "INTAKE_GATHER_SECONDS": float(get("ECOMFLUX_INTAKE_GATHER_MS", "2")) / 1000,
        "DEV_MODE": get("ECOMFLUX_DEV", "0") == "1",
        "DEV_ENVIRONMENT_FILE": str(instance / DEV_ENVIRONMENT_FILE) if dev else None,
    }
