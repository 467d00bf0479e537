"""Load-balancer health check: database and Redis both answer; warnings ride along without failing it."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .. import runtime
from ..db import database
from ..shopify import api_versions

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
    # An ageing API version is work for a developer, not a reason for the balancer to drop the process.
    shopify_api = api_versions.status(runtime.config()["SHOPIFY_API_VERSION"])
    warnings = [shopify_api.warning] if shopify_api.warning else []
    return jsonify(status="ok" if healthy else "degraded", checks=checks, shopify_api=shopify_api.as_dict(),
                   warnings=warnings), 200 if healthy else 503
