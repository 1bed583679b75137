"""The app's public surface, its limits, and the bind check `procengine serve` runs before listening."""

from __future__ import annotations

import pytest

import procengine.http
from procengine.http.app import check_bind_allowed, create_app, is_loopback
from procengine.http.context import ENGINE_KEY, SETTINGS_KEY
from procengine.settings import Settings
from tests.support.fake_engine import FakeEngine


def test_the_public_api_is_pinned() -> None:
    assert sorted(procengine.http.__all__) == ["check_bind_allowed", "create_app"]


def test_the_app_holds_its_engine_and_settings_and_the_body_limit() -> None:
    engine = FakeEngine()
    settings = Settings(max_body_bytes=4096)

    app = create_app(engine, settings)

    assert app[ENGINE_KEY] is engine
    assert app[SETTINGS_KEY] is settings
    assert app._client_max_size == 4096


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST", "localhost.", "::ffff:127.0.0.1"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "10.0.0.5", "192.168.1.1", "example.com", "128.0.0.1", "localhost.example.com"]
)
def test_other_hosts(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_without_tokens_loopback_is_allowed(host: str) -> None:
    check_bind_allowed(Settings(host=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com"])
def test_without_tokens_any_other_address_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="without API tokens") as refused:
        check_bind_allowed(Settings(host=host))

    assert "--token" in str(refused.value)
    assert repr(host) in str(refused.value)


def test_with_tokens_any_address_is_allowed() -> None:
    check_bind_allowed(Settings(host="0.0.0.0", api_tokens={"tok": "tenant"}))
