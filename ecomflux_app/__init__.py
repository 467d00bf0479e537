"""EcomFlux: Shopify orders posted faithfully into QuickBooks Online."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from flask import Flask, g

from . import runtime
from .config import load_config
from .db import database

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(overrides: dict | None = None) -> Flask:
    """App factory: config from the environment (plus overrides), database, blueprints, headers."""
    config = load_config(instance_path=(overrides or {}).get("INSTANCE_PATH"))
    config.update(overrides or {})
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=config["INSTANCE_PATH"],
    )
    app.config.update(config)
    runtime.init(app.config)

    @app.before_request
    def _note_db():
        # Connections open lazily on first query (webhook intake usually needs none); at teardown
        # close only what this request opened: the CLI and tests may already hold one.
        g.db_was_open = not database.is_closed()

    @app.teardown_request
    def _close_db(_exc):
        if not g.pop("db_was_open", True) and not database.is_closed():
            database.close()

    # Here, not at the top: every submodule import runs this package first, and web/ is the top layer.
    from .web import BLUEPRINT_MODULES, params
    from .web.security import install_security_headers

    params.install(app)  # before the blueprints: their routes use its <id:...> converter

    for name in BLUEPRINT_MODULES:
        module = importlib.import_module(f".web.{name}", __name__)
        if name == "dev" and not app.config.get("DEV_MODE"):
            continue
        app.register_blueprint(module.bp)
    install_security_headers(app)
    return app


def ensure_instance() -> str:
    path = os.environ.get("ECOMFLUX_INSTANCE") or str(Path.cwd() / "instance")
    Path(path).mkdir(parents=True, exist_ok=True)
    return path
