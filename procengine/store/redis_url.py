"""What a `--redis-url` names: one server, a master found through Sentinel, or a Redis Cluster.

- `redis://[user:password@]host:port[/db]` (or `rediss://`): one server;
- `unix://[[user]:password@]/absolute/path/redis.sock[?db=N]`: one server on this machine, over its unix socket
  (what `procengine serve` uses for its embedded redis-server);
- `redis+sentinel://[user:password@]h1:26379,h2:26379/mymaster[/db]`: the master the Sentinels name;
- `redis+cluster://[user:password@]h1:7000,h2:7001`: a Redis Cluster.

`rediss+sentinel://` and `rediss+cluster://` use TLS. Parsed without connecting, so that settings refuse a
URL that names no Redis before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["UNIX_PATH_MAX", "Kind", "RedisTarget", "RedisTls", "parse_redis_url"]

Kind = Literal["standalone", "sentinel", "cluster"]

UNIX_PATH_MAX = 103
"""The longest unix socket path, in bytes, that binds everywhere (sun_path is 108 bytes on Linux, 104 on macOS
and the BSDs, the NUL included); redis-server refuses to start on a longer one."""


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a `--redis-url` names."""

    kind: Kind
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    """Sentinels or cluster nodes to start from (not for standalone: its URL says it all)."""
    service: str = ""
    """The master's name, for Sentinel."""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False


@dataclass(frozen=True, slots=True)
class RedisTls:
    """Files for TLS to Redis (`--redis-tls-ca`, `--redis-tls-cert`, `--redis-tls-key`), given to every connection:
    the one server's, the sentinels' and their master's, every cluster node's."""

    ca_file: str | None = None
    """PEM of the CA(s) that signed the servers' certificates (a private CA); None: the system's."""
    cert_file: str | None = None
    """PEM of this client's certificate, for servers that ask for one (tls-auth-clients)."""
    key_file: str | None = None
    """PEM of its private key (may be in `cert_file`)."""

    def connection_kwargs(self) -> dict[str, Any]:
        """redis-py's names for them (the same for Redis, Sentinel and RedisCluster), only those given."""
        given = {"ssl_ca_certs": self.ca_file, "ssl_certfile": self.cert_file, "ssl_keyfile": self.key_file}
        return {name: value for name, value in given.items() if value is not None}

    def check_url(self, target: RedisTarget) -> None:
        """ValueError when TLS files are given for a URL that does not use TLS (they would be ignored)."""
        if self.connection_kwargs() and not target.tls:
            scheme = target.url.partition("://")[0]
            if scheme.lower() == "unix":
                raise ValueError("TLS files are given (--redis-tls-*) but a unix:// socket does not use TLS")
            raise ValueError(
                f"TLS files are given (--redis-tls-*) but the Redis URL's scheme {scheme}:// does not use TLS: "
                f"use {scheme.replace('redis', 'rediss', 1)}://"
            )


def parse_redis_url(url: str) -> RedisTarget:
    """The Redis a URL names; ValueError saying what is wrong with it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"{url!r} is not a URL: expected redis://, redis+sentinel:// or redis+cluster://")
    scheme = scheme.lower()
    if scheme == "unix":
        return _unix(url)
    if scheme in ("redis", "rediss"):
        return RedisTarget("standalone", url, tls=scheme == "rediss")
    base, plus, kind = scheme.partition("+")
    if not plus or base not in ("redis", "rediss") or kind not in ("sentinel", "cluster"):
        raise ValueError(f"unknown Redis URL scheme {scheme!r}: use redis://, redis+sentinel:// or redis+cluster://")
    credentials, at, location = rest.rpartition("@")
    username, password = _credentials(credentials) if at else (None, None)
    hosts_text, _, path = location.partition("/")
    path = path.split("?", 1)[0]
    hosts = tuple(_host(part, url) for part in hosts_text.split(",") if part.strip())
    if not hosts:
        raise ValueError(f"{url!r} names no host")
    parts = [p for p in path.split("/") if p]
    if kind == "cluster":
        if parts:
            raise ValueError(f"{url!r}: a cluster URL has no path (Redis Cluster has only database 0)")
        return RedisTarget("cluster", url, hosts, username=username, password=password, tls=base == "rediss")
    if not parts or len(parts) > 2:
        raise ValueError(f"{url!r}: a Sentinel URL ends with /<master name>[/<db>]")
    db = parts[1] if len(parts) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"{url!r}: database {db!r} is not a number")
    return RedisTarget("sentinel", url, hosts, unquote(parts[0]), int(db), username, password, tls=base == "rediss")


def _unix(url: str) -> RedisTarget:
    """`unix:///path/redis.sock[?db=N]`, read as redis-py reads it (the path, the password before `@/`, `db` from the
    query), refusing what redis-py would quietly misread: a host (`unix://redis.sock` is host `redis.sock` and no
    path), a relative or missing path, a path too long to bind."""
    form = "unix:///absolute/path/redis.sock[?db=N] (three slashes)"
    parts = urlsplit(url)
    if parts.hostname or parts.port:
        raise ValueError(f"{url!r}: a unix socket URL names a path, not a host: {form}")
    path = unquote(parts.path)
    if not path.startswith("/") or path.endswith("/"):
        raise ValueError(f"{url!r} names no socket file: {form}")
    if len(path.encode()) > UNIX_PATH_MAX:
        raise ValueError(f"{url!r}: a unix socket path may have at most {UNIX_PATH_MAX} bytes")
    db = parse_qs(parts.query).get("db", ["0"])[-1]
    if not db.isdigit():
        raise ValueError(f"{url!r}: database {db!r} is not a number")
    credentials, at, _ = parts.netloc.rpartition("@")
    username, password = _credentials(credentials) if at else (None, None)
    return RedisTarget("standalone", url, db=int(db), username=username, password=password)


def _credentials(text: str) -> tuple[str | None, str | None]:
    user, colon, password = text.partition(":")
    if not colon:
        return unquote(user) or None, None  # redis://name@host: a user name, as redis-py reads redis:// URLs
    return unquote(user) or None, unquote(password)


def _host(text: str, url: str) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"{url!r}: {text!r} is not host:port")
    return host.strip("[]"), int(port)
