"""A linked company QuickBooks no longer lets us reach is shown as Reconnect, never as Connected."""

from __future__ import annotations

import pytest

from ecomflux_app.models import QboConnection
from ecomflux_app.quickbooks import connection
from tests.api_fixtures import bearer  # noqa: F401
from tests.fixtures_flow import simple_order


@pytest.fixture(autouse=True)
def _no_earlier_checks(monkeypatch):
    monkeypatch.setattr(connection, "_checked", {}, raising=False)


def test_the_page_says_reconnect_when_intuit_does_not_know_the_company(client, connected_shop, bearer):  # noqa: F811
    headers = bearer(connected_shop.shop.domain)
    # What a restarted sandbox (or a company closed at Intuit) looks like: the realm is unknown (403, 3100).
    connected_shop.intuit.state.companies.pop(connected_shop.realm)
    qbo = client.get("/api/status", headers=headers).get_json()["qbo"]
    assert (qbo["state"], qbo["connected"], qbo["reconnect_required"]) == ("reconnect_required", False, True)
    assert "3100" in qbo["reason"] and "reconnect" in qbo["reason"].lower()
    assert QboConnection.get(QboConnection.shop == connected_shop.shop.id).status == "reconnect_required"


def test_the_page_says_connected_only_after_the_company_answered(client, connected_shop, bearer):  # noqa: F811
    headers = bearer(connected_shop.shop.domain)
    before = connected_shop.intuit.counters(connected_shop.realm)["requests"]
    qbo = client.get("/api/status", headers=headers).get_json()["qbo"]
    assert (qbo["state"], qbo["problem"]) == ("connected", None)
    client.get("/api/status", headers=headers)  # checked once per process per CHECK_SECONDS
    assert connected_shop.intuit.counters(connected_shop.realm)["requests"] == before + 1


def test_an_order_for_an_unknown_company_waits_for_the_reconnect_instead_of_failing(connected_shop):
    from ecomflux_app.sync.orders import post_order
    from ecomflux_app.sync.shop_settings import shop_settings
    from ecomflux_app.work_results import WaitingForReconnect

    conn = QboConnection.get(QboConnection.shop == connected_shop.shop.id)
    connected_shop.intuit.state.companies.pop(connected_shop.realm)
    with pytest.raises(WaitingForReconnect):
        post_order(connected_shop.shop, simple_order(), shop_settings(connected_shop.shop, conn), conn)
    assert QboConnection.get_by_id(conn.id).status == "reconnect_required"



def test_the_connects_company_read_is_the_pages_first_check(client, connected_shop, bearer):  # noqa: F811
    """The CompanyInfo read at connect is a metered read like the page's check: the page shown right after
    the connect does not read it again."""
    headers = bearer(connected_shop.shop.domain)
    before = connected_shop.intuit.counters(connected_shop.realm)["reads"]
    connection._read_company(QboConnection.get(QboConnection.shop == connected_shop.shop.id))  # what the callback does
    after_connect = connected_shop.intuit.counters(connected_shop.realm)["reads"]
    assert after_connect - before == 2  # CompanyInfo, Preferences
    qbo = client.get("/api/status", headers=headers).get_json()["qbo"]
    assert (qbo["state"], qbo["problem"]) == ("connected", None)
    assert connected_shop.intuit.counters(connected_shop.realm)["reads"] == after_connect
