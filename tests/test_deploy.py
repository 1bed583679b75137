"""deploy/: the Dockerfile, the compose file and the Kubernetes manifests parse, and every port, probe, flag and
environment variable they name is one the server really has."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from procengine.cli.main import build_parser
from procengine.http.routes import ROUTES
from procengine.settings import Settings
from tests.support.api import BASE

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PATHS = {route.path for route in ROUTES if route.method == "GET"}
ENV_NAMES = {f"PROCENGINE_{name.upper()}" for name in Settings.model_fields}
DRAIN_MARGIN_S = 10
"""A drain takes the pause grace for running tasks, then up to 5 s more for in-flight requests."""


def serve_flags(args: list[str]) -> None:
    """The arguments parse as `procengine serve` arguments (argparse exits on an unknown flag)."""
    build_parser().parse_args(["serve", *args])


def dockerfile() -> dict[str, list[str]]:
    """Instruction -> its arguments (the last one of each), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, rest = line.strip().partition(" ")
            found[instruction.upper()] = [rest.strip()]
    return found


def exec_form(text: str) -> list[str]:
    parsed = yaml.safe_load(text)  # a JSON array is YAML
    assert isinstance(parsed, list)
    return [str(part) for part in parsed]


def manifests() -> dict[str, dict[str, Any]]:
    by_kind: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["apiVersion"] and document["metadata"]["name"] == "procengine", path
            by_kind[document["kind"]] = document
    return by_kind


def test_the_image_runs_serve_as_a_non_root_user_on_the_port_it_exposes_with_a_real_healthcheck() -> None:
    found = dockerfile()
    entrypoint = exec_form(found["ENTRYPOINT"][0])
    assert entrypoint[:2] == ["procengine", "serve"]
    serve_flags(entrypoint[2:])
    port = entrypoint[entrypoint.index("--port") + 1]
    assert found["EXPOSE"] == [port]
    assert found["USER"][0] not in ("root", "0")
    health = found["HEALTHCHECK"][0]
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", health)
    assert url is not None and url.group(1) == port and url.group(2) in PATHS
    assert found["STOPSIGNAL"] == ["SIGTERM"]


def test_compose_runs_redis_with_aof_and_three_nodes_on_their_own_ports() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    nodes = {name: service for name, service in services.items() if name != "redis"}
    assert len(nodes) == 3
    host_ports = set()
    exposed = dockerfile()["EXPOSE"][0]
    for service in nodes.values():
        assert set(service["environment"]) <= ENV_NAMES
        assert service["environment"]["PROCENGINE_REDIS_URL"].startswith("redis://redis:")
        serve_flags(service["command"])
        (mapping,) = service["ports"]
        host_port, container_port = mapping.rsplit(":", 2)[-2:]
        assert container_port == exposed
        host_ports.add(host_port)
        grace_s = int(service["environment"]["PROCENGINE_PAUSE_GRACE_MS"]) / 1000
        assert int(service["stop_grace_period"].removesuffix("s")) >= grace_s + DRAIN_MARGIN_S
    assert len(host_ports) == 3


def test_the_kubernetes_deployment_probes_real_routes_and_outlasts_the_drain() -> None:
    found = manifests()
    assert set(found) == {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"}
    deployment, config, secret = found["Deployment"], found["ConfigMap"], found["Secret"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert found["Service"]["spec"]["selector"] == labels
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    (container,) = pod["spec"]["containers"]
    serve_flags(container["args"])  # the image's entrypoint is `procengine serve ...`
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": int(dockerfile()["EXPOSE"][0])}
    assert found["Service"]["spec"]["ports"][0]["targetPort"] in ports
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert {"/ready", "/health"} <= PATHS
    sources = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
    assert sources == {"configMapRef": config["metadata"]["name"], "secretRef": secret["metadata"]["name"]}
    assert set(config["data"]) | set(secret["stringData"]) <= ENV_NAMES
    assert {"PROCENGINE_API_TOKENS", "PROCENGINE_REDIS_URL"} <= set(secret["stringData"])  # secrets stay secret
    grace_s = int(config["data"]["PROCENGINE_PAUSE_GRACE_MS"]) / 1000
    assert pod["spec"]["terminationGracePeriodSeconds"] >= grace_s + DRAIN_MARGIN_S
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_the_configmap_and_secret_values_are_settings_serve_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    found = manifests()
    config, secret = found["ConfigMap"]["data"], found["Secret"]["stringData"]
    for name, value in {**config, **secret}.items():
        monkeypatch.setenv(name, value)

    settings = Settings()  # a bad value raises

    assert settings.pause_grace_ms == int(config["PROCENGINE_PAUSE_GRACE_MS"])
    assert settings.api_tokens and settings.redis_url == secret["PROCENGINE_REDIS_URL"]


@pytest.mark.parametrize(
    ("args", "base"),
    [([], "http://127.0.0.1:8080"), (["--port", "9000", "--log-level", "DEBUG"], "http://127.0.0.1:9000")],
)
def test_make_run_prints_commands_for_the_port_it_serves_on(args: list[str], base: str) -> None:
    printed = subprocess.run(
        ["sh", str(DEPLOY / "demo-commands.sh"), *args], capture_output=True, text=True, check=True
    ).stdout
    assert f"BASE={base}{BASE}" in printed
    # the CLI is not on a fresh shell's PATH: the banner names it by its path in .venv (issue 19, item 1)
    assert not re.search(r"(?<![/\w])procengine (start|watch|serve|status)", printed), printed
    assert ".venv/bin/procengine watch" in printed
