"""TLS to Redis with a private CA (issue 17): `--redis-tls-ca` / `--redis-tls-cert` / `--redis-tls-key` reach every
connection kind, a real TLS redis-server (Debian's 7.0, built with TLS) is reached with them, and a wrong CA stops
`serve` with one line instead of a traceback.

The CA and certificates are made for the test with the openssl command line, in a temporary directory.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from procengine.cli.main import main
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.store.redis_url import RedisTls

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or not Path(REDIS_SERVER).exists(), reason="needs openssl and a redis-server"
)


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA, a server certificate for 127.0.0.1 it signed, a client certificate, and an unrelated CA."""
    d = tmp_path_factory.mktemp("pki")
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
                 "-days", "1", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)  # fmt: skip
    # the extensions Python 3.13's strict verification (VERIFY_X509_STRICT) asks of a CA and of what it signs
    (d / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "1", "-extfile", "ext.cnf", cwd=d)  # fmt: skip
    return Pki(d / "ca.pem", d / "other-ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tls_redis(pki: Pki, tmp: Path, *, client_certs: bool) -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(pki.server_cert),
         "--tls-key-file", str(pki.server_key), "--tls-ca-cert-file", str(pki.ca),
         "--tls-auth-clients", "yes" if client_certs else "no", "--save", "", "--appendonly", "no",
         "--dir", str(tmp), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None:
                pytest.fail("redis-server with TLS did not start (is it built with TLS?)")
            subprocess.run(["sleep", "0.02"], check=True)  # no event loop here: a short wait for the port to open
        yield f"rediss://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def tls_redis(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server that speaks only TLS, with a certificate of the private CA; clients need no certificate."""
    yield from _tls_redis(pki, tmp_path_factory.mktemp("redis-tls"), client_certs=False)


@pytest.fixture(scope="module")
def mtls_redis(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same, asking every client for a certificate of the CA."""
    yield from _tls_redis(pki, tmp_path_factory.mktemp("redis-mtls"), client_certs=True)


async def test_a_private_ca_reaches_a_tls_redis(pki: Pki, tls_redis: str) -> None:
    redis = connect(tls_redis, timeout_s=2, retries=0, tls=RedisTls(ca_file=str(pki.ca)))
    try:
        await redis.set("tls", "yes")
        assert await redis.get("tls") == b"yes"
    finally:
        await redis.aclose()


async def test_without_the_private_ca_the_certificate_does_not_verify(pki: Pki, tls_redis: str) -> None:
    redis = connect(tls_redis, timeout_s=2, retries=0, tls=RedisTls(ca_file=str(pki.other_ca)))
    try:
        with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await redis.ping()
    finally:
        await redis.aclose()


async def test_a_client_certificate_is_sent_to_a_redis_that_asks_for_one(pki: Pki, mtls_redis: str) -> None:
    given = RedisTls(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
    with_cert = connect(mtls_redis, timeout_s=2, retries=0, tls=given)
    without = connect(mtls_redis, timeout_s=2, retries=0, tls=RedisTls(ca_file=str(pki.ca)))
    try:
        assert await with_cert.ping()
        with pytest.raises(RedisConnectionError):
            await without.ping()
    finally:
        await with_cert.aclose()
        await without.aclose()


async def test_the_files_reach_the_sentinels_their_master_and_every_cluster_node(pki: Pki) -> None:
    # no TLS Sentinel or Cluster is started here: what is checked is what each kind's connections are given
    tls = RedisTls(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
    expected = {"ssl_ca_certs": str(pki.ca), "ssl_certfile": str(pki.client_cert), "ssl_keyfile": str(pki.client_key)}

    master = connect("rediss+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster", timeout_s=1, retries=0, tls=tls)
    cluster = connect("rediss+cluster://127.0.0.1:3", timeout_s=1, retries=0, tls=tls)
    try:
        assert expected.items() <= master.connection_pool.connection_kwargs.items()
        sentinels = master.connection_pool.sentinel_manager.sentinels  # type: ignore[attr-defined]
        assert len(sentinels) == 2
        for sentinel in sentinels:
            assert expected.items() <= sentinel.connection_pool.connection_kwargs.items()
        assert expected.items() <= cluster.nodes_manager.connection_kwargs.items()  # type: ignore[attr-defined]
    finally:
        await master.aclose()
        await cluster.aclose()


def test_tls_files_on_a_url_without_tls_are_refused(pki: Pki) -> None:
    with pytest.raises(ValueError, match="use rediss://"):
        connect("redis://127.0.0.1:1", timeout_s=1, retries=0, tls=RedisTls(ca_file=str(pki.ca)))
    with pytest.raises(ValueError, match="use rediss\\+sentinel://"):
        Settings(redis_url="redis+sentinel://h:26379/m", redis_tls_ca=pki.ca)
    with pytest.raises(ValueError, match="a unix:// socket does not use TLS"):
        connect("unix:///run/redis.sock", timeout_s=1, retries=0, tls=RedisTls(ca_file=str(pki.ca)))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"redis_tls_ca": "/nonexistent.pem"}, "--redis-tls-ca /nonexistent.pem: No such file"),
        ({"redis_tls_ca": "KEY"}, "--redis-tls-ca"),
        ({"redis_tls_key": "KEY"}, "--redis-tls-key is given without --redis-tls-cert"),
        ({"redis_tls_cert": "CA"}, "--redis-tls-cert"),  # a certificate without its key
    ],
)
def test_unusable_tls_files_are_one_line_settings_errors(pki: Pki, given: dict[str, str], message: str) -> None:
    files = {"KEY": str(pki.server_key), "CA": str(pki.ca)}
    values = {name: files.get(value, value) for name, value in given.items()}
    with pytest.raises(ValueError, match=message.replace("+", "\\+")):
        Settings(redis_url="rediss://127.0.0.1:1", **values)  # type: ignore[arg-type]


def _serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "procengine", "serve", "--port", "0", "--log-level", "WARNING", *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_serve_with_a_wrong_ca_exits_non_zero_with_one_clear_line(pki: Pki, tls_redis: str) -> None:
    # before: a traceback of 60 lines ending in redis.exceptions.ConnectionError
    done = _serve("--redis-url", tls_redis, "--redis-tls-ca", str(pki.other_ca))

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"procengine: error: cannot use Redis at {tls_redis}: ")
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0] and "--redis-tls-ca" in lines[0]


def test_serve_with_a_ca_file_that_is_not_a_certificate_is_a_usage_error(
    pki: Pki, tls_redis: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # in-process: the settings refuse it before anything is imported or started
    code = main(["serve", "--port", "0", "--redis-url", tls_redis, "--redis-tls-ca", str(pki.server_key)])

    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"procengine: error: --redis-tls-ca {pki.server_key}: NO_CERTIFICATE_OR_CRL_FOUND"
    ]


async def test_serve_with_the_private_ca_answers_ready(pki: Pki, tls_redis: str, tmp_path: Path) -> None:
    port = _free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "procengine", "serve", "--port", str(port), "--redis-url", tls_redis,
        "--redis-tls-ca", str(pki.ca), "--prefix", "tls-test", "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = await asyncio.wait_for(server.stdout.readline(), 30)
        assert b"procengine serving on" in line, (line, await server.stderr.read() if server.stderr else b"")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        server.terminate()
        await server.wait()


@pytest.mark.parametrize("command", [["inspect", "--list"], ["export", "--finished-before", "1d"], ["reindex"]])
def test_the_commands_that_go_to_redis_straight_take_the_private_ca_too(
    pki: Pki, tls_redis: str, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # before: inspect, export and reindex had no --redis-tls-* and could not verify a private CA's certificate
    with_ca = main([*command, "--redis-url", tls_redis, "--redis-tls-ca", str(pki.ca), "--prefix", "tls-cli"])
    assert with_ca == 0, capsys.readouterr().err
    capsys.readouterr()

    without = main([*command, "--redis-url", tls_redis, "--prefix", "tls-cli"])

    assert without != 0
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
