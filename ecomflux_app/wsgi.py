"""WSGI entry point `ecomflux_app.wsgi:app`: what `ecomflux web` serves with granian (any WSGI server can serve it)."""

from . import create_app

app = create_app()
