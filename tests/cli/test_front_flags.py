"""The serve flags of issue 17's front-door part reach the settings, and their environment variables too."""

from __future__ import annotations

from pathlib import Path

import pytest

from procengine.cli.main import build_parser, settings_from_args
from procengine.settings import Settings


def settings_for(*argv: str) -> Settings:
    return settings_from_args(build_parser().parse_args(["serve", *argv]))


def test_the_front_door_limits_reach_the_settings() -> None:
    settings = settings_for(
        "--max-nesting-depth", "20", "--max-connections", "10",
        "--http-header-timeout-s", "2.5", "--http-keepalive-timeout-s", "30",
    )  # fmt: skip

    assert settings.max_nesting_depth == 20
    assert settings.max_connections == 10
    assert (settings.http_header_timeout_s, settings.http_keepalive_timeout_s) == (2.5, 30)


def test_the_defaults_of_the_front_door_limits() -> None:
    settings = Settings()

    assert (settings.max_nesting_depth, settings.max_connections) == (64, 4096)
    assert (settings.http_header_timeout_s, settings.http_keepalive_timeout_s) == (10, 75)


def test_the_tls_files_come_from_the_environment_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not PEM")
    monkeypatch.setenv("PROCENGINE_REDIS_URL", "rediss://h:6380")
    monkeypatch.setenv("PROCENGINE_REDIS_TLS_CA", str(ca))

    with pytest.raises(ValueError, match=f"--redis-tls-ca {ca}: "):
        Settings()


@pytest.mark.parametrize("depth", ["7", "129"])
def test_a_nesting_depth_out_of_range_is_a_usage_error(depth: str) -> None:
    from procengine.cli.main import UsageError

    with pytest.raises(UsageError, match="--max-nesting-depth"):
        settings_for("--max-nesting-depth", depth)
