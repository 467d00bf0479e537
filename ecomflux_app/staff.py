"""Support staff accounts: argon2 password hashes, roles, and lockout after repeated failures."""

from __future__ import annotations

import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .models import AuditLog, StaffUser, utcnow

ROLES = ("viewer", "operator")
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
_hasher = PasswordHasher()
# Verifying against a dummy hash for unknown emails keeps response time from revealing which emails exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class LoginError(Exception):
    """Sign-in refused: wrong credentials or a locked account (the message is safe to show)."""


def create_staff(email: str, password: str, role: str = "viewer") -> StaffUser:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise ValueError("passwords need at least 10 characters")
    user = StaffUser.create(email=email.strip().lower(), password_hash=_hasher.hash(password), role=role)
    AuditLog.create(action="staff_created", target=user.email, detail={"role": role})
    return user


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def authenticate(email: str, password: str, ip: str | None = None) -> StaffUser:
    """The staff member, or LoginError; five failures lock the account for 15 minutes."""
    email = (email or "").strip().lower()
    user = StaffUser.get_or_none(StaffUser.email == email)
    now = utcnow()
    if user is not None and user.locked_until and user.locked_until > now:
        AuditLog.create(staff=user, staff_email=email, action="login_locked", ip=ip)
        raise LoginError("Too many failed sign-ins: this account is locked for a few minutes.")
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
        ok = user is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        if user is not None:
            failures = user.failed_logins + 1
            locked = now + LOCKOUT if failures >= MAX_FAILURES else None
            StaffUser.update(failed_logins=0 if locked else failures, locked_until=locked).where(
                StaffUser.id == user.id).execute()
        AuditLog.create(staff=user, staff_email=email or None, action="login_failed", ip=ip)
        raise LoginError("Email or password is not right.")
    StaffUser.update(failed_logins=0, locked_until=None, last_login_at=now).where(StaffUser.id == user.id).execute()
    AuditLog.create(staff=user, staff_email=user.email, action="login", ip=ip)
    return user
