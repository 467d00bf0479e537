"""Deterministic QBO requestids: the same document always gets the same id, attempt after attempt."""

from __future__ import annotations

import hashlib

MAX_LENGTH = 50
_VERSION = "v1"


def request_id(shop: str, source_key: str, kind: str) -> str:
    """A requestid (<= 50 chars) from (shop, source key, document kind); never from attempt or time.

    kind names what is written, e.g. "SalesReceipt", "Invoice", "Customer", "Item", "void".
    """
    if not shop or not source_key or not kind:
        raise ValueError("shop, source_key and kind are required for a requestid")
    digest = hashlib.sha256(f"{_VERSION}\x1f{shop}\x1f{source_key}\x1f{kind}".encode()).hexdigest()
    rid = f"ef-{digest[:44]}"
    assert len(rid) <= MAX_LENGTH
    return rid
