"""Shopify-side failures, shaped as the dispatcher's retry/park signals so handlers can let them rise."""

from __future__ import annotations

from ..work_results import RetryLater, WaitingForReconnect


class ShopifyError(Exception):
    """Shopify answered in a way we cannot use (bad request, GraphQL errors)."""

    def __init__(self, message: str, detail: dict | None = None):
        super().__init__(message)
        self.detail = detail


class OAuthError(ShopifyError):
    """A token endpoint refused the request (invalid code, subject token, client or grant)."""

    def __init__(self, error: str, description: str = "", status: int | None = None):
        super().__init__(f"{error}: {description}" if description else error, {"error": error, "status": status})
        self.error = error
        self.status = status


class ShopifyReauthRequired(WaitingForReconnect):
    """The shop has no usable Shopify token (uninstalled, revoked, refresh rejected): park until reinstall."""

    def __init__(self, reason: str = "Shopify authorization required: reinstall or reopen the app"):
        super().__init__(reason)


class ShopifyThrottled(RetryLater):
    """GraphQL cost limit hit and waiting in-process would take too long: retry the work later."""


class ShopifyUnavailable(RetryLater):
    """Network failure, timeout or 5xx from Shopify: retry the work later."""


class ShopifyUnreachable(ShopifyUnavailable):
    """No answer at all (connection refused, DNS, timeout): a worker retries later; a person is told at once."""
