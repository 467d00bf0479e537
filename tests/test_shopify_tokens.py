"""Expiring offline tokens: refresh before expiry, one refresh per shop at a time, newest token stored."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from ecomflux_app.db import database
from ecomflux_app.models import Shop, utcnow
from ecomflux_app.shopify.errors import ShopifyReauthRequired
from ecomflux_app.shopify.tokens import REFRESH_MARGIN, fresh_access_token
from ecomflux_app.sync.installs import install_via_token_exchange

SHOP = "tokens-shop.myshopify.com"


@pytest.fixture
def shop(install_shop):
    return install_shop(SHOP)


def near_expiry(shop: Shop) -> Shop:
    Shop.update(access_token_expires_at=utcnow() + REFRESH_MARGIN - timedelta(seconds=30)).where(
        Shop.id == shop.id).execute()
    return Shop.get_by_id(shop.id)


def sandbox_refresh_tokens(sandbox) -> list[str]:
    return [t for t, v in sandbox.state.refresh_tokens.items() if v["shop"] == SHOP]


def test_token_far_from_expiry_is_used_as_is(shop, shopify_sandbox):
    assert fresh_access_token(shop) == shop.access_token
    assert shopify_sandbox.stats["refreshes"] == 0


def test_near_expiry_refreshes_and_rotates(shop, shopify_sandbox):
    old_access, old_refresh, version = shop.access_token, shop.refresh_token, shop.token_version
    stale = near_expiry(shop)
    token = fresh_access_token(stale)
    stored = Shop.get_by_id(shop.id)
    assert token == stored.access_token != old_access
    assert stored.refresh_token != old_refresh and stored.token_version == version + 1
    assert stored.access_token_expires_at - utcnow() > timedelta(minutes=59)
    assert sandbox_refresh_tokens(shopify_sandbox) == [stored.refresh_token]
    # The caller's object is brought up to date too.
    assert stale.access_token == token and stale.refresh_token == stored.refresh_token


def test_concurrent_callers_share_exactly_one_refresh_per_expiry(shop, shopify_sandbox):
    shopify_sandbox.set_token_lifetimes(access_ttl=REFRESH_MARGIN.seconds + 60)  # short-lived, not yet due
    for round_no in range(1, 4):
        near_expiry(shop)
        stale_copies = [Shop.get_by_id(shop.id) for _ in range(8)]
        results, errors = [], []
        barrier = threading.Barrier(len(stale_copies))

        def work(copy):
            try:
                with database.connection_context():
                    barrier.wait(timeout=10)
                    results.append(fresh_access_token(copy))
            except Exception as exc:  # surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(c,)) for c in stale_copies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        stored = Shop.get_by_id(shop.id)
        assert shopify_sandbox.stats["refreshes"] == round_no
        assert shopify_sandbox.stats["refresh_failures"] == 0
        assert set(results) == {stored.access_token}
        # The one live refresh token at Shopify is the one we stored.
        assert sandbox_refresh_tokens(shopify_sandbox) == [stored.refresh_token]


def test_invalid_grant_requires_reauth_and_never_loops(shop, shopify_sandbox):
    # Someone else used our refresh token (e.g. a lost response): Shopify rotated it away.
    body, status = shopify_sandbox.state.access_token_request(SHOP, {
        "client_id": shopify_sandbox.state.api_key, "client_secret": shopify_sandbox.state.api_secret,
        "grant_type": "refresh_token", "refresh_token": shop.refresh_token})
    assert status == 200
    stale = near_expiry(shop)
    with pytest.raises(ShopifyReauthRequired) as info:
        fresh_access_token(stale)
    assert "invalid_grant" in info.value.reason
    stored = Shop.get_by_id(shop.id)
    assert stored.status == "reauth_required" and "invalid_grant" in stored.auth_error
    assert stored.access_token is None and stored.refresh_token is None
    failures = shopify_sandbox.stats["refresh_failures"]
    for _ in range(3):
        with pytest.raises(ShopifyReauthRequired):
            fresh_access_token(Shop.get_by_id(shop.id))
    assert shopify_sandbox.stats["refresh_failures"] == failures == 1


def test_reauth_shop_recovers_through_token_exchange(app, shop, shopify_sandbox):
    from ecomflux_app.shopify.session_token import verify_session_token

    shopify_sandbox.revoke(SHOP)
    with pytest.raises(ShopifyReauthRequired):
        fresh_access_token(near_expiry(shop))
    session = verify_session_token(shopify_sandbox.session_token(SHOP), app.config["SHOPIFY_API_KEY"],
                                   [app.config["SHOPIFY_API_SECRET"]])
    back = install_via_token_exchange(session)
    assert back.status == "active" and back.auth_error is None
    assert fresh_access_token(back) == back.access_token


def test_uninstalled_shop_has_no_token(shop):
    Shop.update(status="uninstalled", access_token=None).where(Shop.id == shop.id).execute()
    with pytest.raises(ShopifyReauthRequired):
        fresh_access_token(Shop.get_by_id(shop.id))


def test_refresh_waits_rather_than_racing_when_redis_is_unreachable(shop, shopify_sandbox, monkeypatch):
    import redis

    from ecomflux_app import runtime
    from ecomflux_app.shopify.errors import ShopifyUnavailable

    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(runtime, "redis", lambda: dead)
    with pytest.raises(ShopifyUnavailable):
        fresh_access_token(near_expiry(shop))
    assert shopify_sandbox.stats["refreshes"] == 0
    assert Shop.get_by_id(shop.id).refresh_token == shop.refresh_token
