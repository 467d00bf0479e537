"""Commands run beside `ecomflux dev` get its configuration from instance/dev-environment.json."""

from __future__ import annotations

from ecomflux_app.config import load_config, write_dev_environment

DEV = {"SHOPIFY_SHOP_BASE_URL": "http://127.0.0.1:8001/{shop}",
       "INTUIT_ENVIRONMENT": "http://127.0.0.1:8002/.well-known/openid_configuration",
       "QBO_API_BASE_URL": "http://127.0.0.1:8002/v3", "APP_URL": "http://127.0.0.1:8000", "ECOMFLUX_DEV": "1",
       "PATH": "/usr/bin"}


def test_a_command_on_the_dev_database_uses_the_running_dev_setup(tmp_path):
    socket = tmp_path / "redis.sock"
    socket.touch()
    write_dev_environment(tmp_path, dict(DEV, REDIS_URL=f"unix://{socket}"))
    cfg = load_config({}, tmp_path)
    assert cfg["SHOPIFY_SHOP_BASE_URL"] == "http://127.0.0.1:8001/{shop}"
    assert (cfg["QBO_API_BASE_URL"], cfg["REDIS_URL"], cfg["DEV_MODE"]) == (
        "http://127.0.0.1:8002/v3", f"unix://{socket}", True)
    assert cfg["INTUIT_DISCOVERY_URL"] == DEV["INTUIT_ENVIRONMENT"]
    assert "PATH" not in (tmp_path / "dev-environment.json").read_text()  # only the app's own settings


def test_what_you_set_wins_and_another_database_ignores_the_dev_setup(tmp_path):
    write_dev_environment(tmp_path, DEV)
    assert load_config({"SHOPIFY_SHOP_BASE_URL": "https://{shop}"}, tmp_path)["SHOPIFY_SHOP_BASE_URL"] == \
        "https://{shop}"
    other = load_config({"DATABASE_URL": "postgresql://db/prod"}, tmp_path)
    assert (other["SHOPIFY_SHOP_BASE_URL"], other["DEV_MODE"], other["DEV_ENVIRONMENT_FILE"]) == (
        "https://{shop}", False, None)


def test_a_stopped_dev_setups_redis_is_not_used(tmp_path):
    write_dev_environment(tmp_path, dict(DEV, REDIS_URL=f"unix://{tmp_path / 'gone.sock'}"))
    assert load_config({}, tmp_path)["REDIS_URL"] is None  # the command starts its own embedded Redis
