"""Load-balancer health check: database and Redis both answer."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .. import runtime
from ..db import database

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    checks = {}
    try:
        database.execute_sql("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: the balancer needs an answer
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        runtime.redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if healthy else "degraded", checks=checks), 200 if healthy else 503
