"""Support staff accounts: argon2 password hashes, roles, sign-in, and their management (each change audited)."""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from peewee import IntegrityError

from . import login_throttle
from .db import database
from .models import AuditLog, StaffSession, StaffUser, utcnow
from .staff_sessions import revoke_all

ROLES = ("viewer", "operator")
MIN_PASSWORD = 10
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_hasher = PasswordHasher()
# Verifying against a dummy hash for unknown emails keeps response time from revealing which emails exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
# One answer for an unknown email, a wrong password and a disabled account.
WRONG_CREDENTIALS = "Email or password is not right."


class LoginError(Exception):
    """Sign-in refused (the message is safe to show and the same whether or not the email exists)."""

    status = 401


class LoginThrottled(LoginError):
    """Too many recent attempts for this email or address: try again after `wait` seconds."""

    status = 429

    def __init__(self, wait: int):
        minutes = (wait + 59) // 60
        when = f"{wait} seconds" if wait < 120 else f"{minutes} minutes"
        super().__init__(f"Too many sign-in attempts. Try again in {when}.")
        self.wait = wait


class StaffError(ValueError):
    """A staff management request that cannot be done (the message says why, for the CLI)."""


def normalize_email(email: str | None) -> str:
    return (email or "").strip().lower()


def _valid_email(email: str) -> str:
    email = normalize_email(email)
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise StaffError(f"{email or '(empty)'} is not a valid email address")
    return email


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise StaffError(f"passwords need at least {MIN_PASSWORD} characters")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise StaffError(f"role must be one of {', '.join(ROLES)}")


def _audit(action: str, target: str, actor: str | None, **detail) -> None:
    AuditLog.create(action=action, target=target, staff_email=actor, detail=detail or None)


def create_staff(email: str, password: str, role: str = "viewer", actor: str | None = None) -> StaffUser:
    email = _valid_email(email)
    _check_role(role)
    _check_password(password)
    try:
        with database.atomic():
            user = StaffUser.create(email=email, password_hash=_hasher.hash(password), role=role)
    except IntegrityError:
        raise StaffError(f"a staff account for {email} already exists") from None
    _audit("staff_created", user.email, actor, role=role)
    return user


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def get_staff(email: str) -> StaffUser:
    user = StaffUser.get_or_none(StaffUser.email == normalize_email(email))
    if user is None:
        raise StaffError(f"no staff account for {normalize_email(email) or '(empty)'}")
    return user


def list_staff() -> list[StaffUser]:
    return list(StaffUser.select().order_by(StaffUser.email))


def live_sessions(user: StaffUser) -> int:
    return StaffSession.select().where((StaffSession.staff == user.id) & StaffSession.revoked_at.is_null()
                                       & (StaffSession.expires_at > utcnow())).count()


def disable_staff(email: str, actor: str | None = None) -> StaffUser:
    """No more sign-ins, and every open session ends now."""
    user = get_staff(email)
    StaffUser.update(disabled_at=user.disabled_at or utcnow()).where(StaffUser.id == user.id).execute()
    ended = revoke_all(user, "disabled")
    _audit("staff_disabled", user.email, actor, sessions_ended=ended)
    return StaffUser.get_by_id(user.id)


def enable_staff(email: str, actor: str | None = None) -> StaffUser:
    user = get_staff(email)
    StaffUser.update(disabled_at=None).where(StaffUser.id == user.id).execute()
    _audit("staff_enabled", user.email, actor)
    return StaffUser.get_by_id(user.id)


def set_role(email: str, role: str, actor: str | None = None) -> StaffUser:
    """A new role; open sessions end so the member signs in again under it."""
    _check_role(role)
    user = get_staff(email)
    StaffUser.update(role=role).where(StaffUser.id == user.id).execute()
    ended = revoke_all(user, "role_changed")
    _audit("staff_role_changed", user.email, actor, old=user.role, new=role, sessions_ended=ended)
    return StaffUser.get_by_id(user.id)


def reset_password(email: str, password: str, actor: str | None = None) -> StaffUser:
    """A new password; open sessions end (whoever knew the old one is out)."""
    _check_password(password)
    user = get_staff(email)
    StaffUser.update(password_hash=_hasher.hash(password)).where(StaffUser.id == user.id).execute()
    ended = revoke_all(user, "password_reset")
    _audit("staff_password_reset", user.email, actor, sessions_ended=ended)
    return StaffUser.get_by_id(user.id)


def remove_staff(email: str, actor: str | None = None) -> None:
    """Delete the account and its sessions; its audit entries stay, with the email they were made under."""
    user = get_staff(email)
    with database.atomic():
        revoke_all(user, "removed")
        AuditLog.update(staff=None).where(AuditLog.staff == user.id).execute()
        StaffSession.delete().where(StaffSession.staff == user.id).execute()
        StaffUser.delete().where(StaffUser.id == user.id).execute()
    _audit("staff_removed", user.email, actor, role=user.role)


def authenticate(email: str, password: str, ip: str | None = None) -> StaffUser:
    """The staff member, or LoginError (LoginThrottled when attempts come too fast).

    The answer and the work done are the same for an unknown email, a wrong password and a
    disabled account: one argon2 verification each, one message, one throttle.
    """
    email = normalize_email(email)
    wait = login_throttle.reserve(email, ip)
    if wait:
        AuditLog.create(staff_email=email or None, action="login_throttled", ip=ip, detail={"wait": wait})
        raise LoginThrottled(wait)
    user = StaffUser.get_or_none(StaffUser.email == email) if email else None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
        verified = user is not None
    except (VerificationError, InvalidHashError):
        verified = False
    if not verified or user.disabled_at is not None:
        detail = {"reason": "disabled"} if verified else None
        AuditLog.create(staff=user, staff_email=email or None, action="login_failed", ip=ip, detail=detail)
        raise LoginError(WRONG_CREDENTIALS)
    login_throttle.succeeded(email, ip)
    StaffUser.update(last_login_at=utcnow()).where(StaffUser.id == user.id).execute()
    AuditLog.create(staff=user, staff_email=user.email, action="login", ip=ip)
    return user
