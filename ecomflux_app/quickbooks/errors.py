"""QBO error classes, retryable vs fatal, parsed from QBO's JSON or XML Fault bodies."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET


class QboError(Exception):
    """A QBO call failed; keeps QBO's Message, Detail, code, element and the intuit_tid for the logs."""

    retryable = False

    def __init__(self, message: str, *, code: str | None = None, detail: str | None = None,
                 element: str | None = None, intuit_tid: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail = detail
        self.element = element
        self.intuit_tid = intuit_tid
        self.status = status

    def describe(self) -> str:
        """One line for people: QBO's message, detail and the element it names."""
        parts = [self.message]
        if self.detail and self.detail != self.message:
            parts.append(self.detail)
        text = ": ".join(parts)
        if self.element:
            text += f" (element: {self.element})"
        if self.code:
            text = f"QBO {self.code}: {text}"
        return text

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "detail": self.detail, "element": self.element,
                "intuit_tid": self.intuit_tid, "status": self.status}


class QboThrottled(QboError):
    """429 / fault 3001: the realm is over Intuit's limits; wait a minute."""

    retryable = True
    retry_after = 60


class QboTransient(QboError):
    """5xx, timeouts, connection errors: retry with backoff."""

    retryable = True


class QboAuthError(QboError):
    """401 even after a forced token refresh."""

    retryable = True


class QboAuthorizationFailed(QboError):
    """403 / fault 3100: the company does not (or no longer) let this app in (unknown realm, access
    removed, subscription ended): a reconnect is needed, retrying changes nothing."""


class QboValidationError(QboError):
    """QBO rejected the request (2xxx/6xxx validation): fatal, never retried blindly."""


class QboStaleObject(QboValidationError):
    """5010: the SyncToken is stale; re-read and try again."""


class QboDuplicateDocNumber(QboValidationError):
    """6140: a transaction with this DocNumber exists already."""


class QboDuplicateName(QboValidationError):
    """6240: the name is used by another customer, vendor or employee."""


class RealmBusy(QboError):
    """Our own limiter has no budget for this realm right now: come back later, don't hold the worker."""

    retryable = True

    def __init__(self, retry_after: float, reason: str = "QBO request budget for this company is used up"):
        super().__init__(reason)
        self.retry_after = retry_after


_BY_CODE = {"5010": QboStaleObject, "6140": QboDuplicateDocNumber, "6240": QboDuplicateName, "3001": QboThrottled,
            "3100": QboAuthorizationFailed}


def _first_error_json(body: dict) -> dict:
    fault = body.get("Fault") or body.get("fault") or {}
    errors = fault.get("Error") or fault.get("error") or []
    first = errors[0] if errors else {}
    return {
        "message": first.get("Message") or first.get("message") or "QuickBooks error",
        "detail": first.get("Detail") or first.get("detail"),
        "code": str(first.get("code")) if first.get("code") is not None else None,
        "element": first.get("element") or None,
    }


def _first_error_xml(text: str) -> dict:
    root = ET.fromstring(text)
    for node in root.iter():
        if node.tag.split("}")[-1] == "Error":
            fields = {child.tag.split("}")[-1]: (child.text or "") for child in node}
            return {"message": fields.get("Message") or "QuickBooks error", "detail": fields.get("Detail"),
                    "code": node.get("code"), "element": node.get("element")}
    return {"message": "QuickBooks error", "detail": text[:500], "code": None, "element": None}


def parse_fault(status: int, text: str, intuit_tid: str | None = None) -> QboError:
    """Map an error response to the right QboError subclass."""
    try:
        info = _first_error_json(json.loads(text)) if text.lstrip().startswith("{") else _first_error_xml(text)
    except (ValueError, ET.ParseError):
        info = {"message": f"HTTP {status}", "detail": text[:500] or None, "code": None, "element": None}
    cls = _BY_CODE.get(info["code"] or "")
    if cls is None:
        if status == 429:
            cls = QboThrottled
        elif status == 401:
            cls = QboAuthError
        elif status == 403:
            cls = QboAuthorizationFailed
        elif status >= 500:
            cls = QboTransient
        else:
            cls = QboValidationError
    return cls(info["message"], code=info["code"], detail=info["detail"], element=info["element"],
               intuit_tid=intuit_tid, status=status)
