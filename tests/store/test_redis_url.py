"""`--redis-url`: the three kinds of Redis it can name, and a clear error for what names none."""

from __future__ import annotations

import pytest

from procengine.cli.inspect import redact
from procengine.store.redis_url import RedisTarget, parse_redis_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h:6379/2", RedisTarget("standalone", "redis://h:6379/2")),
        ("rediss://:pw@h:6380", RedisTarget("standalone", "rediss://:pw@h:6380", tls=True)),
        ("unix:///run/redis.sock", RedisTarget("standalone", "unix:///run/redis.sock")),
        (
            "unix://:s%40cret@/run/redis.sock?db=3",
            RedisTarget("standalone", "unix://:s%40cret@/run/redis.sock?db=3", db=3, password="s@cret"),
        ),
        (
            "redis+sentinel://h1:26379,h2:26380/mymaster",
            RedisTarget(
                "sentinel", "redis+sentinel://h1:26379,h2:26380/mymaster", (("h1", 26379), ("h2", 26380)), "mymaster"
            ),
        ),
        (
            "rediss+sentinel://app:s%40cret@[::1]:26379/my%20master/3",
            RedisTarget(
                "sentinel",
                "rediss+sentinel://app:s%40cret@[::1]:26379/my%20master/3",
                (("::1", 26379),),
                "my master",
                3,
                "app",
                "s@cret",
                tls=True,
            ),
        ),
        (
            "redis+cluster://app@h1:7000, h2:7001",
            RedisTarget(
                "cluster", "redis+cluster://app@h1:7000, h2:7001", (("h1", 7000), ("h2", 7001)), username="app"
            ),
        ),
        (
            "REDIS+CLUSTER://h1:7000/",
            RedisTarget("cluster", "REDIS+CLUSTER://h1:7000/", (("h1", 7000),)),
        ),
    ],
)
def test_each_kind_of_url_names_its_redis(url: str, expected: RedisTarget) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:6379", "is not a URL"),
        ("http://h:6379", "unknown Redis URL scheme 'http'"),
        ("redis+tls://h:6379", "unknown Redis URL scheme"),
        ("redis+sentinel://h1:26379", "ends with /<master name>"),
        ("redis+sentinel://h1:26379/m/0/extra", "ends with /<master name>"),
        ("redis+sentinel://h1:26379/m/x", "database 'x' is not a number"),
        ("redis+sentinel:///m", "names no host"),
        ("redis+sentinel://h1/m", "'h1' is not host:port"),
        ("redis+cluster://h1:7000,h2:port", "'h2:port' is not host:port"),
        ("redis+cluster://h1:7000/1", "a cluster URL has no path"),
        ("unix://redis.sock", "names a path, not a host: unix:///absolute/path/redis.sock"),
        ("unix://localhost/run/redis.sock", "names a path, not a host"),
        ("unix://", "names no socket file"),
        ("unix:///run/", "names no socket file"),
        ("unix:///run/redis.sock?db=x", "database 'x' is not a number"),
        ("unix:///" + "d" * 120 + "/redis.sock", "at most 103 bytes"),
    ],
)
def test_a_url_that_names_no_redis_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_redis_url(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis+sentinel://app:pw@h1:26379,h2:26379/mymaster", "redis+sentinel://app:***@h1:26379,h2:26379/mymaster"),
        ("redis+cluster://:p%40w@h1:7000,h2:7001", "redis+cluster://:***@h1:7000,h2:7001"),
        ("redis://h:6379", "redis://h:6379"),
    ],
)
def test_messages_show_a_url_without_its_password(url: str, shown: str) -> None:
    assert redact(url) == shown
