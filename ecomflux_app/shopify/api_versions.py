"""Shopify's API version calendar: quarterly YYYY-01/04/07/10 releases, each supported for 12 months."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

from ..config import parse_api_version as parse  # the version name's format: beside the pinned version

SUPPORT_MONTHS = 12
WARN_DAYS = 90  # warn this long before the pinned version leaves support (one release cycle + margin)


def released(version: str) -> date:
    """The day Shopify releases a stable version (the first of its month)."""
    year, month = parse(version)
    return date(year, month, 1)


def supported_until(version: str) -> date:
    """The day the version leaves support: 12 months after its release."""
    year, month = parse(version)
    return date(year + SUPPORT_MONTHS // 12, month, 1)


def today_utc() -> date:
    return datetime.now(timezone.utc).date()


def latest_stable(on: date) -> str:
    """The newest version released on or before `on`."""
    month = (on.month - 1) // 3 * 3 + 1
    return f"{on.year:04d}-{month:02d}"


def oldest_supported(on: date) -> str:
    """The oldest version still supported on `on` (what Shopify serves for an unsupported one)."""
    newest = latest_stable(on)
    year, month = parse(newest)
    # Four releases a year are all supported for 12 months: the one released 9 months before the newest is oldest.
    month -= 9
    if month < 1:
        year, month = year - 1, month + 12
    return f"{year:04d}-{month:02d}"


def is_supported(version: str, on: date) -> bool:
    """Whether Shopify serves `version` as asked on `on` (released and not yet past its 12 months)."""
    try:
        return released(version) <= on < supported_until(version)
    except ValueError:
        return False


@dataclass(frozen=True)
class VersionStatus:
    """How the pinned version stands on a given day, for the health endpoint and the support console."""

    version: str
    supported_until: date
    days_left: int
    latest: str
    warning: str | None

    def as_dict(self) -> dict:
        return {"version": self.version, "supported_until": self.supported_until.isoformat(),
                "days_left": self.days_left, "latest_stable": self.latest, "warning": self.warning}


def status(version: str, on: date | None = None) -> VersionStatus:
    """The pinned version's support window and a warning once it is within WARN_DAYS of its end."""
    on = on or today_utc()
    ends = supported_until(version)
    left = (ends - on).days
    latest = latest_stable(on)
    warning = None
    if left <= 0:
        warning = (f"Shopify API {version} left support on {ends.isoformat()}: Shopify now answers with "
                   f"{oldest_supported(on)} instead. Move SHOPIFY_API_VERSION and shopify.app.toml to {latest}.")
    elif left <= WARN_DAYS:
        warning = (f"Shopify API {version} leaves support on {ends.isoformat()} ({left} days). "
                   f"Move SHOPIFY_API_VERSION and shopify.app.toml to {latest}.")
    return VersionStatus(version, ends, left, latest, warning)
