"""The `procengine` command: flags over environment over defaults, clear usage errors, the inspect stub."""

from __future__ import annotations

import asyncio
import logging
import sys
import types
from pathlib import Path

import pytest

import procengine.cli
from procengine.cli.main import UsageError, build_parser, main, settings_from_args
from procengine.settings import Settings


@pytest.fixture(autouse=True)
def _keep_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve puts the working directory on sys.path and configures logging: undo both after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: None)


def settings_for(*argv: str) -> Settings:
    return settings_from_args(build_parser().parse_args(["serve", *argv]))


def test_defaults_apply_when_neither_flag_nor_environment_is_given() -> None:
    settings = settings_for()

    assert settings == Settings()
    assert (settings.redis_url, settings.host, settings.port) == (None, "127.0.0.1", 8080)


def test_flags_win_over_the_environment_which_wins_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCENGINE_PORT", "9000")
    monkeypatch.setenv("PROCENGINE_PREFIX", "from-env")
    monkeypatch.setenv("PROCENGINE_API_TOKENS", "envtok=envtenant")

    settings = settings_for("--prefix", "from-flag", "--token", "a=tenant-a", "--token", "b=tenant-b")

    assert settings.port == 9000
    assert settings.prefix == "from-flag"
    assert settings.api_tokens == {"a": "tenant-a", "b": "tenant-b"}


def test_every_serve_flag_reaches_the_settings() -> None:
    settings = settings_for(
        "--redis-url", "redis://example:6379/0",
        "--data-dir", "/tmp/pe",
        "--host", "0.0.0.0",
        "--port", "0",
        "--prefix", "pe",
        "--handlers", "mod.a,mod.b",
        "--handlers", "mod.c",
        "--log-level", "debug",
        "--pause-grace-ms", "10",
        "--node-ttl-ms", "20",
        "--passivate-after-ms", "30",
        "--event-loop", "asyncio",
        "--durability", "replicated",
    )  # fmt: skip

    assert settings.redis_url == "redis://example:6379/0"
    assert settings.data_dir == Path("/tmp/pe")
    assert (settings.host, settings.port, settings.prefix) == ("0.0.0.0", 0, "pe")
    assert settings.handlers == ["mod.a", "mod.b", "mod.c"]
    assert settings.log_level == "DEBUG"
    assert (settings.pause_grace_ms, settings.node_ttl_ms, settings.passivate_after_ms) == (10, 20, 30)
    assert settings.event_loop == "asyncio"
    assert settings.durability == "replicated"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--port", "abc"], {}, "argument --port: invalid int value"),
        (["--port", "70000"], {}, "--port: Input should be less than or equal to 65535"),
        (["--token", "no-equals-sign"], {}, "--token: token must look like TOKEN=TENANT"),
        (["--log-level", "loud"], {}, "argument --log-level: invalid choice"),
        (["--pause-grace-ms", "-1"], {}, "--pause-grace-ms: Input should be greater than or equal to 0"),
        (["--handlers", "no_such_module_here"], {}, "--handlers: no module named 'no_such_module_here'"),
        ([], {"PROCENGINE_PORT": "abc"}, "PROCENGINE_PORT: Input should be a valid integer"),
        ([], {"PROCENGINE_LOG_LEVEL": "loud"}, "PROCENGINE_LOG_LEVEL: must be one of"),
        (["--bogus"], {}, "unrecognized arguments: --bogus"),
        (["--event-loop", "trio"], {}, "argument --event-loop: invalid choice"),
        ([], {"PROCENGINE_EVENT_LOOP": "trio"}, "PROCENGINE_EVENT_LOOP: Input should be 'auto', 'uvloop' or 'asyncio'"),
        (["--redis-url", "redis+sentinel://h1:26379"], {}, "--redis-url: 'redis+sentinel://h1:26379': a Sentinel URL"),
        ([], {"PROCENGINE_REDIS_URL": "http://h:1"}, "PROCENGINE_REDIS_URL: unknown Redis URL scheme 'http'"),
        (["--durability", "replicated"], {}, "error: durability replicated needs a Redis with a replica"),
        (
            ["--durability", "replicated", "--redis-url", "redis+cluster://h:7000"],
            {},
            "error: durability replicated is not supported on Redis Cluster",
        ),
    ],
)
def test_a_bad_value_is_a_usage_error_without_a_traceback(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert main(["serve", *argv]) == 2

    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_serve_runs_the_server_with_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []

    async def serve(settings: Settings) -> None:
        seen.append(settings)

    fake = types.ModuleType("procengine.cli.serve")
    fake.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "procengine.cli.serve", fake)
    monkeypatch.setattr(procengine.cli, "serve", fake, raising=False)

    assert main(["serve", "--port", "0", "--prefix", "p1", "--log-level", "WARNING"]) == 0

    assert len(seen) == 1
    assert (seen[0].port, seen[0].prefix) == (0, "p1")


def test_inspect_needs_an_id_or_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect"]) == 2
    assert "procengine inspect" in capsys.readouterr().err


def test_no_command_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    assert "--redis-url" in capsys.readouterr().out


def test_serve_refuses_a_public_address_without_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("procengine: error:") and "0.0.0.0" in err and "Traceback" not in err


@pytest.mark.parametrize(("choice", "expected"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_serve_runs_on_the_event_loop_asked_for(choice: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    async def serve(settings: Settings) -> None:
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])

    fake = types.ModuleType("procengine.cli.serve")
    fake.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "procengine.cli.serve", fake)
    monkeypatch.setattr(procengine.cli, "serve", fake, raising=False)

    assert main(["serve", "--port", "0", "--event-loop", choice]) == 0

    assert seen == [expected]


def test_on_exhausted_from_flags_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_for().on_exhausted_of("acme") == "fail"
    settings = settings_for(
        "--on-exhausted", "pause", "--on-exhausted-for", "acme=fail", "--on-exhausted-for", "b=pause"
    )
    assert (settings.on_exhausted_of("acme"), settings.on_exhausted_of("b"), settings.on_exhausted_of("c")) == (
        "fail",
        "pause",
        "pause",
    )
    monkeypatch.setenv("PROCENGINE_ON_EXHAUSTED", "pause")
    monkeypatch.setenv("PROCENGINE_ON_EXHAUSTED_FOR", "acme=fail,beta=pause")
    settings = settings_for()
    assert (settings.on_exhausted, settings.on_exhausted_for) == ("pause", {"acme": "fail", "beta": "pause"})


def test_a_bad_on_exhausted_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--on-exhausted-for"):
        settings_for("--on-exhausted-for", "acme=stop")
    with pytest.raises(UsageError, match=r"--on-exhausted-for: on-exhausted must look like TENANT=fail\|pause"):
        settings_for("--on-exhausted-for", "acme")
