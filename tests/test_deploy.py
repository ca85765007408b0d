"""The lab deployment files, checked without a Docker engine: the compose file validates with Debian's
docker-compose, and the image and services hold what a lab needs."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_compose_validates_with_docker_compose(tmp_path):
    if shutil.which("docker-compose") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must validate the compose file: .ci/run installs docker-compose")
        pytest.skip("no docker-compose here (apt-get install docker-compose; .ci/run does)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / "lab.env.example", tmp_path / "lab.env")
    out = subprocess.run(["docker-compose", "--env-file", str(tmp_path / "lab.env"), "-f",
                          str(tmp_path / "docker-compose.yml"), "--profile", "gpu", "--profile", "cpu", "config"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert set(resolved["services"]) == {"postgres", "app", "worker", "worker-cpu"}
    assert resolved["services"]["app"]["environment"]["TRANSFERLAB_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_services_start_after_a_healthy_database_and_share_the_artifacts():
    services = COMPOSE["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("app", "worker", "worker-cpu"):
        service = services[name]
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}, name
        assert service["volumes"] == ["artifacts:/data"] and service["environment"]["TRANSFERLAB_EMBEDDED_WORKER"] == "0"
    assert set(COMPOSE["volumes"]) == {"pgdata", "artifacts"}
    assert services["app"]["ports"] == ["${TRANSFERLAB_PUBLISH:-127.0.0.1:8501}:8501"]  # loopback unless told
    [gpu] = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} and services["worker"]["profiles"] == ["gpu"]
    assert services["worker"]["command"][-2:] == ["--gpus", "all"]  # one worker process per GPU of the host
    assert services["worker-cpu"]["profiles"] == ["cpu"] and "cpu" in services["worker-cpu"]["command"]


def test_no_secret_is_written_in_the_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    passwords = re.findall(r"^\s*POSTGRES_PASSWORD:\s*(\S+)", text, re.M) + re.findall(r"//\w+:([^@]+)@", text)
    assert len(passwords) == 2 and all(p.startswith("${") for p in passwords)  # both from lab.env
    assert "lab.env" in (ROOT / ".gitignore").read_text() and "lab.env" in (ROOT / ".dockerignore").read_text()


def test_the_image_installs_like_make_runs_unprivileged_and_checks_its_health():
    assert DOCKERFILE.startswith("#") and "ARG BASE=python:3.11-slim" in DOCKERFILE  # CI builds on its own base
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.M) == ["${BASE}"]  # one stage: the environment is written once
    instructions = [line for line in DOCKERFILE.replace("\\\n", " ").splitlines() if line and not line.startswith("#")]
    [install] = [i for i, line in enumerate(instructions) if line.startswith("RUN") and "make install" in line]
    assert instructions[install - 1] == "COPY Makefile requirements.txt ./"
    # make comes and goes in the RUN that uses it, with the apt lists; runtime requirements only, no pip cache
    steps = [step.strip() for step in re.sub(r"^RUN (--mount=\S+ )*", "", instructions[install]).split("&&")]
    assert steps[0] == "apt-get update" and steps[1] == "apt-get install -y --no-install-recommends make"
    install_step = "PIP_NO_CACHE_DIR=1 make install PYTHON=python3 REQUIREMENTS=requirements.txt"
    assert re.sub(r"\s+", " ", steps[2]) == install_step
    assert steps[3:] == ["apt-get purge -y --auto-remove make", "apt-get clean", "rm -rf /var/lib/apt/lists/*"]
    assert not any(re.search(r"make|pip |apt-get", line) for line in instructions[install + 1:-1])  # up to CMD
    user = re.search(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user and user.group(1) not in ("root", "0")
    assert "HEALTHCHECK" in DOCKERFILE and "/_stcore/health" in DOCKERFILE and "EXPOSE 8501" in DOCKERFILE
    assert "TRANSFERLAB_VAR=/data" in DOCKERFILE and "VOLUME /data" in DOCKERFILE
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)
    make = (ROOT / "Makefile").read_text()
    assert "install: $(STAMP)" in make and "REQUIREMENTS ?= requirements.txt requirements-dev.txt" in make
    assert "$(STAMP): $(REQUIREMENTS)" in make and "$(addprefix -r ,$(REQUIREMENTS))" in make
