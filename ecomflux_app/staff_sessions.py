"""Support console sessions held on the server: a random token in the cookie, its hash in a row that can be revoked."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from .models import StaffSession, StaffUser, utcnow

# Absolute: a session ends 8 hours after sign-in however busy it was (the cookie says the same).
SESSION_LIFETIME = timedelta(hours=8)
KEEP_ENDED = timedelta(days=30)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(user: StaffUser, ip: str | None = None) -> str:
    """A new session for a signed-in staff member; returns the token the cookie carries (never stored)."""
    token = secrets.token_urlsafe(32)
    # Rows of long-ended sessions go at each sign-in (kept a while for whoever reads the table).
    StaffSession.delete().where(StaffSession.expires_at < utcnow() - KEEP_ENDED).execute()
    StaffSession.create(staff=user, token_hash=_hash(token), expires_at=utcnow() + SESSION_LIFETIME, ip=ip)
    return token


def load_session(token: str | None) -> StaffUser | None:
    """The staff member behind a live session token: not revoked, not expired, account not disabled."""
    if not token:
        return None
    row = (StaffSession.select(StaffSession, StaffUser).join(StaffUser)
           .where((StaffSession.token_hash == _hash(token)) & StaffSession.revoked_at.is_null()
                  & (StaffSession.expires_at > utcnow()) & StaffUser.disabled_at.is_null())
           .first())
    return row.staff if row else None


def revoke_session(token: str | None, reason: str) -> int:
    """End one session (sign-out); a copy of its cookie is worthless afterwards."""
    if not token:
        return 0
    return StaffSession.update(revoked_at=utcnow(), revoked_reason=reason).where(
        (StaffSession.token_hash == _hash(token)) & StaffSession.revoked_at.is_null()).execute()


def revoke_all(user: StaffUser | int, reason: str) -> int:
    """End every live session of a staff member (disabled, role changed, password reset, removed)."""
    staff_id = user if isinstance(user, int) else user.id
    return StaffSession.update(revoked_at=utcnow(), revoked_reason=reason).where(
        (StaffSession.staff == staff_id) & StaffSession.revoked_at.is_null()).execute()
