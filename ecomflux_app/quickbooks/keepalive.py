"""Scheduled token care: keep idle connections inside the 100-day window, warn before the 5-year cap."""

from __future__ import annotations

import logging
from datetime import timedelta

from ..models import QboConnection, utcnow
from ..statuses import ConnectionStatus
from ..work_results import WaitingForReconnect
from .errors import QboError
from .expiry import authorization_end
from .tokens import fresh_access_token

log = logging.getLogger(__name__)

IDLE_REFRESH_AFTER = timedelta(days=1)


def keep_connections_alive() -> dict:
    """Refresh connections idle for a day; flag those whose hard expiry is near. Returns counts."""
    now = utcnow()
    refreshed = warned = parked = 0
    for conn in QboConnection.select().where(QboConnection.status == ConnectionStatus.CONNECTED):
        end = authorization_end(conn, now)
        if end is not None and end.kind == "hard" and end.warn:
            reason = end.message
            if conn.status_reason != reason:
                QboConnection.update(status_reason=reason).where(QboConnection.id == conn.id).execute()
            warned += 1
        if conn.last_refresh_at is None or now - conn.last_refresh_at > IDLE_REFRESH_AFTER:
            try:
                fresh_access_token(conn, rejected=conn.access_token or "")
                refreshed += 1
            except WaitingForReconnect:
                parked += 1
            except QboError as exc:
                log.warning("keepalive refresh for realm %s failed: %s", conn.realm_id, exc)
    return {"refreshed": refreshed, "warned": warned, "reconnect_required": parked}
