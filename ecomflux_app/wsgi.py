"""WSGI entry point for gunicorn: `ecomflux_app.wsgi:app`."""

from . import create_app

app = create_app()
