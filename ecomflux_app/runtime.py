"""Process-wide wiring shared by web and worker: config, database, key ring, Redis."""

from __future__ import annotations

import logging

from . import crypto
from .config import load_config
from .db import database, open_database
from .logging_setup import configure_logging
from .work_queue import get_redis

_config: dict | None = None


def init(config: dict | None = None) -> dict:
    """Open the database, install the key ring and remember the config; idempotent per config."""
    global _config
    config = config or load_config()
    if _config is config:
        return config
    configure_logging()
    crypto.configure(config["ENCRYPTION_KEYS"])
    if database.obj is None or _config is None or _config.get("DATABASE_URL") != config["DATABASE_URL"]:
        if database.obj is not None:
            database.close()
        open_database(config["DATABASE_URL"])
    _config = config
    logging.getLogger(__name__).debug("runtime initialised")
    return config


def config() -> dict:
    """The active config; initialises from the environment on first use (worker processes)."""
    return _config if _config is not None else init()


def redis():
    return get_redis(config())
