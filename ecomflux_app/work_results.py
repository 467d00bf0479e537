"""The result of a unit of work: the Outcome a handler reports, or the exception that retries, parks or fails it."""

from __future__ import annotations

from dataclasses import dataclass, field
from .statuses import DeliveryStatus

# Final delivery statuses a handler may return.
FINAL_STATUSES = frozenset({DeliveryStatus.POSTED, DeliveryStatus.PROCESSED, DeliveryStatus.SKIPPED_DUPLICATE,
                            DeliveryStatus.FLAGGED, DeliveryStatus.FAILED, DeliveryStatus.IGNORED})


@dataclass
class Outcome:
    """The end state of one delivery: a status from FINAL_STATUSES plus an optional reason."""

    status: str
    error: str | None = None
    detail: dict | None = field(default=None)

    def __post_init__(self) -> None:
        if self.status not in FINAL_STATUSES:
            raise ValueError(f"unknown outcome status {self.status!r}")


class RetryLater(Exception):
    """Transient trouble (throttling, 5xx, timeouts): try the delivery again after a delay."""

    def __init__(self, reason: str, delay_seconds: float = 30.0, detail: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = delay_seconds
        self.detail = detail


class WaitingForReconnect(Exception):
    """The shop's QuickBooks connection needs the admin: park the delivery as pending, not failed."""

    def __init__(self, reason: str = "QuickBooks reconnect required"):
        super().__init__(reason)
        self.reason = reason


class FatalError(Exception):
    """The input or QBO rejected the work for good: fail with the reason; a replay after a fix works."""

    def __init__(self, reason: str, detail: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
