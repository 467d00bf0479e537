"""Placeholder blueprint; filled in by its issue."""

from flask import Blueprint

bp = Blueprint("qbo_oauth", __name__)
