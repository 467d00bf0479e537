"""A QBO Fault response of the Intuit stand-in, shared by the server and its rule modules."""

from __future__ import annotations

import time


class Fault(Exception):
    """A QBO Fault response."""

    def __init__(self, status: int, code: str, message: str, detail: str = "", element: str = "",
                 kind: str = "ValidationFault"):
        super().__init__(message)
        self.status, self.code, self.message, self.detail, self.element, self.kind = (
            status, code, message, detail, element, kind)

    def body(self) -> dict:
        error = {"Message": self.message, "Detail": self.detail or self.message, "code": self.code}
        if self.element:
            error["element"] = self.element
        return {"Fault": {"Error": [error], "type": self.kind}, "time": now_text()}


def now_text() -> str:
    """The time stamp QBO puts on its responses."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000-00:00", time.gmtime())
