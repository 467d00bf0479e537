"""When a QuickBooks authorization ends (the refresh token's rolling and 5-year hard expiry) and when to warn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..models import QboConnection, utcnow
from ..statuses import ConnectionStatus

# Intuit tells the customer inside QuickBooks 30 days ahead; the page and the console say it as early.
WARN_AHEAD = timedelta(days=30)


@dataclass(frozen=True)
class AuthorizationEnd:
    ends_at: datetime
    kind: str  # "hard": Intuit's 5-year limit, whatever the use; "rolling": 100 days without a refresh
    days_left: int
    warn: bool

    @property
    def message(self) -> str:
        day = f"{self.ends_at:%B} {self.ends_at.day}, {self.ends_at.year}"
        if self.kind == "hard":
            return (f"QuickBooks authorization ends on {day} ({self.days_left} days): Intuit ends every "
                    "connection five years after it was approved, so reconnect before then to keep syncing.")
        return (f"QuickBooks authorization lapses on {day} ({self.days_left} days) unless EcomFlux refreshes it: "
                "reconnect before then to keep syncing.")


def authorization_end(conn: QboConnection | None, now: datetime | None = None) -> AuthorizationEnd | None:
    """The earlier of the stored refresh-token expiries (each from Intuit's own token answer), if any."""
    if conn is None or conn.status != ConnectionStatus.CONNECTED:
        return None
    rolling, hard = conn.refresh_token_expires_at, conn.refresh_token_hard_expires_at
    candidates = [(when, kind) for when, kind in ((hard, "hard"), (rolling, "rolling")) if when is not None]
    if not candidates:
        return None
    ends_at, kind = min(candidates, key=lambda c: c[0])  # a tie is the hard limit: reconnecting is the only cure
    left = ends_at - (now or utcnow())
    return AuthorizationEnd(ends_at, kind, max(0, left.days), left < WARN_AHEAD)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def authorization_status(conn: QboConnection | None, reconnect_url: str | None = None) -> dict | None:
    """What /api/status says about it: both expiries, the end, and a warning when it is near."""
    end = authorization_end(conn)
    if end is None:
        return None
    return {
        "refresh_token_expires_at": _iso(conn.refresh_token_expires_at),
        "hard_expires_at": _iso(conn.refresh_token_hard_expires_at),
        "ends_at": _iso(end.ends_at),
        "ends_by": end.kind,
        "days_left": end.days_left,
        "warning": end.message if end.warn else None,
        "reconnect_url": reconnect_url,
    }
