"""A valid QBO access token for a connection: refreshed ahead of expiry, one refresher per realm.

Intuit rotates the refresh token's VALUE on refresh, so two workers refreshing at once would make
one of them use a dead token (invalid_grant). Refreshes therefore run under a Redis lock per
realm, re-read the row after taking the lock (another worker may have refreshed already), and
store the new access and refresh tokens in one transaction.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis

from .. import runtime
from ..db import database
from ..models import QboConnection, utcnow
from ..statuses import ConnectionStatus
from ..work_results import WaitingForReconnect
from . import oauth
from .errors import QboTransient

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)
LOCK_TIMEOUT = 30
LOCK_WAIT = 20


def _usable(conn: QboConnection) -> bool:
    return bool(conn.access_token) and conn.access_token_expires_at is not None and (
        conn.access_token_expires_at - REFRESH_MARGIN > utcnow())


def mark_reconnect_required(conn: QboConnection, reason: str) -> None:
    """Park the connection: jobs stop calling QBO and wait; the page shows Reconnect."""
    QboConnection.update(status=ConnectionStatus.RECONNECT_REQUIRED, status_reason=reason, updated_at=utcnow()).where(
        (QboConnection.id == conn.id) & (QboConnection.status == ConnectionStatus.CONNECTED)).execute()
    conn.status, conn.status_reason = ConnectionStatus.RECONNECT_REQUIRED, reason
    log.warning("QBO connection for realm %s needs a reconnect: %s", conn.realm_id, reason)


def store_tokens(conn: QboConnection, tokens: oauth.TokenSet, expected_version: int | None = None,
                 new_grant: bool = False) -> bool:
    """Persist access + rotated refresh token together, each with its own expiry from Intuit's answer;
    False if another writer got there first. `new_grant` (a fresh consent) replaces the hard expiry
    even when Intuit left it out; a refresh that leaves it out keeps the one known."""
    now = utcnow()
    values = {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "access_token_expires_at": now + timedelta(seconds=tokens.expires_in),
        "refresh_token_expires_at": now + timedelta(seconds=tokens.refresh_expires_in)
        if tokens.refresh_expires_in else None,
        "token_version": QboConnection.token_version + 1,
        "last_refresh_at": now,
        "updated_at": now,
    }
    if tokens.hard_expires_in:
        values["refresh_token_hard_expires_at"] = now + timedelta(seconds=tokens.hard_expires_in)
    elif new_grant:
        values["refresh_token_hard_expires_at"] = None
    query = QboConnection.update(**values).where(QboConnection.id == conn.id)
    if expected_version is not None:
        query = query.where(QboConnection.token_version == expected_version)
    with database.atomic():
        return query.execute() == 1


def fresh_access_token(conn: QboConnection, rejected: str | None = None) -> str:
    """An access token good for at least five more minutes; `rejected` forces a refresh past that token."""
    if conn.status != ConnectionStatus.CONNECTED:
        raise WaitingForReconnect(conn.status_reason or "QuickBooks is not connected")
    if rejected is None and _usable(conn):
        return conn.access_token
    try:
        lock = runtime.redis().lock(f"ecomflux:qbo-refresh:{conn.realm_id}", timeout=LOCK_TIMEOUT,
                                    blocking_timeout=LOCK_WAIT)
        acquired = lock.acquire()
    except redis.RedisError as exc:
        # Never refresh unlocked: a race would burn the rotating refresh token.
        raise QboTransient(f"token refresh lock unavailable: {exc}") from None
    if not acquired:
        raise QboTransient("another worker is still refreshing this company's token")
    try:
        current = QboConnection.get_by_id(conn.id)
        if current.status != ConnectionStatus.CONNECTED:
            raise WaitingForReconnect(current.status_reason or "QuickBooks is not connected")
        someone_else_refreshed = rejected is not None and current.access_token != rejected
        if (rejected is None or someone_else_refreshed) and _usable(current):
            _copy(current, conn)
            return current.access_token
        try:
            tokens = oauth.refresh(current.refresh_token)
        except oauth.IntuitGrantError as exc:
            mark_reconnect_required(current, f"Intuit refused the refresh token ({exc}); reconnect QuickBooks")
            _copy(current, conn)
            raise WaitingForReconnect(current.status_reason) from None
        except oauth.IntuitUnavailable as exc:
            raise QboTransient(str(exc)) from None
        if not store_tokens(current, tokens, expected_version=current.token_version):
            # Cannot happen under the lock unless the lock expired; the stored row is the truth.
            log.error("token store lost a race for realm %s", current.realm_id)
        _copy(QboConnection.get_by_id(conn.id), conn)
        return conn.access_token
    finally:
        try:
            lock.release()
        except redis.RedisError:
            pass  # the lock expires by itself


def _copy(source: QboConnection, target: QboConnection) -> None:
    for name in ("access_token", "refresh_token", "access_token_expires_at", "refresh_token_expires_at",
                 "refresh_token_hard_expires_at", "token_version", "status", "status_reason", "last_refresh_at"):
        setattr(target, name, getattr(source, name))
