"""The session-scoped local Intuit + QBO sandbox, served over HTTP and reachable in-process for assertions."""

from __future__ import annotations

import pytest

from ecomflux_app.config import DEV_INTUIT_CLIENT_ID, DEV_INTUIT_CLIENT_SECRET
from ecomflux_app.sandbox.intuit_server import create_intuit_sandbox
from ecomflux_app.sandbox.serving import BackgroundServer


class IntuitSandbox:
    """Handle on the running sandbox: URL, config overrides and in-process helpers."""

    def __init__(self, server: BackgroundServer, app):
        self.server, self.app, self.state = server, app, app.sandbox

    @property
    def url(self) -> str:
        return self.server.url

    def config_overrides(self) -> dict:
        return {"INTUIT_ENVIRONMENT": f"{self.url}/.well-known/openid_configuration",
                "INTUIT_DISCOVERY_URL": f"{self.url}/.well-known/openid_configuration",
                "QBO_API_BASE_URL": f"{self.url}/v3",
                "INTUIT_CLIENT_ID": DEV_INTUIT_CLIENT_ID, "INTUIT_CLIENT_SECRET": DEV_INTUIT_CLIENT_SECRET}

    def reset(self) -> None:
        self.state.reset()

    def create_company(self, **kwargs) -> str:
        return self.state.create_company(**kwargs)

    def issue_tokens(self, realm: str) -> dict:
        return self.state.issue_tokens(realm)

    def company(self, realm: str):
        return self.state.companies[realm]

    def entities(self, realm: str, entity: str) -> list[dict]:
        with self.state.lock:
            return [dict(o) for o in self.company(realm).entities[entity].values() if o.get("status") != "Deleted"]

    def put_entity(self, realm: str, entity: str, obj: dict) -> dict:
        """Something the bookkeeper typed into QuickBooks directly (bypasses validation)."""
        with self.state.lock:
            added = self.company(realm).add(entity, obj)
            self.company(realm).changed(entity, added, "created")  # QuickBooks notifies the app of it
            return added

    def edit_entity(self, realm: str, entity: str, obj_id: str, **changes) -> dict:
        """The bookkeeper changes a record in QuickBooks (Active=False, status="Deleted" as a merge leaves it)."""
        from ecomflux_app.sandbox.intuit_server import _now_text

        with self.state.lock:
            obj = self.company(realm).entities[entity][str(obj_id)]
            obj.update(changes)
            obj["SyncToken"] = str(int(obj.get("SyncToken", "0")) + 1)
            obj.setdefault("MetaData", {})["LastUpdatedTime"] = _now_text()
            self.company(realm).changed(entity, obj, "deleted" if obj.get("status") == "Deleted" else "updated")
            return dict(obj)

    def inject_fault(self, realm: str, kind: str, count: int = 1, **options) -> None:
        """kind: 429 | 429-xml | 500 | 503 | 401 | timeout | latency | hold (options: seconds; endpoint such as
        "POST payment" to hit only that call; after_items=N: a batch fails after its first N items;
        event: the threading.Event a hold waits for)."""
        with self.state.lock:
            self.company(realm).faults.append({"kind": kind, "count": count, **options})

    def forget_request_ids(self, realm: str) -> None:
        """Intuit's requestid retention ran out: a repeated requestid is a new request again."""
        with self.state.lock:
            self.company(realm).replies.clear()

    def token_fault(self, kind: str = "invalid_grant", count: int = 1) -> None:
        with self.state.lock:
            self.state.token_faults.extend([kind] * count)

    def set_latency(self, realm: str, seconds: float) -> None:
        self.company(realm).latency = seconds

    def set_token_lifetimes(self, access_ttl: int | None = None, refresh_ttl: int | None = None,
                            rotate: bool = True) -> None:
        with self.state.lock:
            if access_ttl is not None:
                self.state.access_ttl = access_ttl
            if refresh_ttl is not None:
                self.state.refresh_ttl = refresh_ttl
            self.state.rotate = rotate

    def revoke_all(self, realm: str) -> None:
        self.state.revoke_all(realm)

    def notify_app(self, client, verifier_token: str) -> int:
        """Deliver the queued change notifications to the app under test (its test client), signed."""

        def post(body: bytes, headers: dict) -> int:
            return client.post("/qbo/notifications", data=body, headers=headers).status_code

        self.state.notification_target, self.state.verifier_token = post, verifier_token
        return self.state.deliver_notifications()

    def counters(self, realm: str) -> dict:
        with self.state.lock:
            return dict(self.company(realm).counters)


@pytest.fixture(scope="session")
def intuit_sandbox():
    app = create_intuit_sandbox(DEV_INTUIT_CLIENT_ID, DEV_INTUIT_CLIENT_SECRET)
    server = BackgroundServer(app).start()
    yield IntuitSandbox(server, app)
    server.stop()
