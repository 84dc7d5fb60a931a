"""The production-like stack's files are accepted by the tools that will run them: Docker
Compose (`config`), Prometheus (`promtool check config`), and Kubernetes manifests that give
every service gRPC health probes. No Docker engine runs here, so the stack itself is not
started; these checks are what can be proven without one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from libs.config import SERVICES

REPO = Path(__file__).resolve().parents[3]


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    assert legacy, (
        "neither `docker compose` nor docker-compose is installed; `make test` installs it"
    )
    return [legacy]


def test_docker_compose_accepts_the_stack():
    result = subprocess.run(
        [*compose_command(), "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    infrastructure = {"postgres", "kafka", "otel-collector", "prometheus", "grafana"}
    assert infrastructure | set(SERVICES) <= set(services)


def test_prometheus_accepts_its_configuration():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed; `make test` installs it"
    result = subprocess.run(
        [promtool, "check", "config", str(REPO / "deploy" / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_has_a_kubernetes_deployment_with_grpc_health_probes():
    documents = [
        doc
        for path in sorted((REPO / "deploy" / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    for name in SERVICES:
        assert name in deployments, f"no Deployment for {name}"
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        for probe in ("readinessProbe", "livenessProbe"):
            assert "grpc" in container[probe], f"{name} {probe} is not a gRPC health probe"
