"""The states the models' status columns hold, one StrEnum each (values are the stored strings, unchanged)."""

from __future__ import annotations

from enum import StrEnum


class ShopStatus(StrEnum):
    """Shop.status: whether the app is installed and can reach the store."""

    ACTIVE = "active"
    UNINSTALLED = "uninstalled"
    REAUTH_REQUIRED = "reauth_required"
    REDACTED = "redacted"


class ConnectionStatus(StrEnum):
    """QboConnection.status: the shop's link to its QuickBooks company (the page shows it as the card's state)."""

    NOT_CONNECTED = "not_connected"
    CONNECTED = "connected"
    RECONNECT_REQUIRED = "reconnect_required"


class DeliveryStatus(StrEnum):
    """WebhookDelivery.status: where a delivery is, and what became of it (a handler's Outcome)."""

    RECEIVED = "received"
    QUEUED = "queued"
    PROCESSING = "processing"
    POSTED = "posted"
    PROCESSED = "processed"
    SKIPPED_DUPLICATE = "skipped_duplicate"
    PENDING = "pending"
    FLAGGED = "flagged"
    FAILED = "failed"
    IGNORED = "ignored"


class RecordStatus(StrEnum):
    """SyncRecord.status: a ledger row's document in QuickBooks."""

    PENDING = "pending"
    POSTING = "posting"
    POSTED = "posted"
    FLAGGED = "flagged"
    FAILED = "failed"
    WAITING_RECONNECT = "waiting_reconnect"
    VOIDED = "voided"
    SKIPPED = "skipped"


class RunStatus(StrEnum):
    """BackfillRun.status and ReconciliationRun.status: a long run's progress."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    PAUSED = "paused"
    CANCELLED = "cancelled"
