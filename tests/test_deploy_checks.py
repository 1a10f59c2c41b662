"""The deployment files pass their checks, and each check fails on a broken copy.

`make deploy-check` lints deploy/Dockerfile (hadolint), validates the Kubernetes manifests
against the pinned Kubernetes schemas (kubernetes-validate) and runs `nginx -t` on the nginx
configuration; feeding each target a deliberately broken copy shows the check really checks.
`make test` runs these checks here only, not a second time from the Makefile.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.servers import REPO

DEPLOY = REPO / "deploy"


def make(target: str, **variables: str) -> subprocess.CompletedProcess[str]:
    command = ["make", "--no-print-directory", "-s", target,
               *(f"{name}={value}" for name, value in variables.items())]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def broken_copy(source: Path, old: str, new: str, tmp_path: Path) -> Path:
    text = source.read_text()
    assert old in text, f"{old!r} is no longer in {source}: update this test"
    copy = tmp_path / source.name
    copy.write_text(text.replace(old, new, 1))
    return copy


@pytest.mark.parametrize("target", [
    "dockerfile-check", "manifests-check",
    pytest.param("nginx-check", marks=pytest.mark.tools("nginx")),
])
def test_the_deployment_files_pass_their_checks(target: str) -> None:
    result = make(target)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("old", "new", "rule"), [
    ("--no-install-recommends ", "", "DL3015"),  # pulls in recommended packages
    ("FROM python:3.11-slim-bookworm\n", "FROM python:latest\n", "DL3007"),  # unpinned base
    ("USER 10001\n", "USER root\n", "DL3002"),  # runs the server as root
])
def test_hadolint_fails_a_broken_dockerfile(tmp_path: Path, old: str, new: str,
                                            rule: str) -> None:
    result = make("dockerfile-check",
                  DOCKERFILE=str(broken_copy(DEPLOY / "Dockerfile", old, new, tmp_path)))
    assert result.returncode != 0
    assert rule in result.stdout + result.stderr


@pytest.mark.parametrize(("old", "new", "complaint"), [
    ("readinessProbe:", "readinesProbe:", "readinesProbe"),  # a typo'd field
    ("containerPort: 50051", "containerPort: grpc", "containerPort"),  # wrong type
    ("apiVersion: apps/v1", "apiVersion: apps/v1beta1", "apps/v1beta1"),  # removed API
])
def test_kubernetes_validate_fails_a_broken_manifest(tmp_path: Path, old: str, new: str,
                                                     complaint: str) -> None:
    manifest = broken_copy(DEPLOY / "kubernetes" / "deployment.yaml", old, new, tmp_path)
    result = make("manifests-check", MANIFESTS=str(manifest))
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr


@pytest.mark.tools("nginx")
@pytest.mark.parametrize(("old", "new", "complaint"), [
    ("grpc_pass ", "grpc_passs ", 'unknown directive "grpc_passs"'),
    ("grpc_read_timeout 300s;", "grpc_read_timeout 300s", "invalid number of arguments"),
    ("upstream tts_replicas", "upstream other_replicas", "no port in upstream"),
])
def test_nginx_t_fails_a_broken_configuration(tmp_path: Path, old: str, new: str,
                                              complaint: str) -> None:
    conf = broken_copy(DEPLOY / "nginx" / "tts-grpc.conf", old, new, tmp_path)
    result = make("nginx-check", NGINX_CONF=str(conf))
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr


def test_the_manifest_runs_the_image_of_this_version() -> None:
    """The image tag deployment.yaml names is the package's version (one version number)."""
    from importlib.metadata import version

    manifest = (DEPLOY / "kubernetes" / "deployment.yaml").read_text()
    assert f"image: tts-grpc:{version('kokoro-tts-grpc')}\n" in manifest
