"""Set-up files agree with the code: compose uses real setting names, the CLI has help;
the Docker image installs from a lock that satisfies pyproject.toml and runs as non-root,
and every compose service runs that image with a health check."""

from __future__ import annotations

import importlib.util
import os
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from alembic.script import ScriptDirectory
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import WorkerProcess, unique, wait_for
from worker.ledger.db import MIGRATIONS
from worker.providers import registry
from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_compose_uses_only_known_settings() -> None:
    known = {f"LEDGERPUSH_{name.upper()}" for name in Settings.model_fields}
    for spec in registry.specs():
        part = spec.settings
        if part is not None:
            prefix = part.model_config.get("env_prefix", "")
            known |= {f"{prefix}{name.upper()}" for name in type(part).model_fields}
    for file in ("docker-compose.yml", "docker-compose.simulators.yml"):
        compose = yaml.safe_load((ROOT / file).read_text())
        for name, service in compose["services"].items():
            for variable in service.get("environment") or {}:
                if variable.startswith("LEDGERPUSH_"):
                    assert variable in known, f"{file}: {name}: {variable} is not a setting"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    redis_command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--appendfsync always" in redis_command


def test_every_command_has_help() -> None:
    for command in ([], ["jobs"], ["tenants"], ["worker"], ["enqueue"], ["simulate"]):
        result = subprocess.run(
            [sys.executable, "-m", "worker", *command, "--help"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout


def test_wrong_setting_names_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker", "jobs", "list"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "LEDGERPUSH_REDIS_URL": "http://nope",
            "LEDGERPUSH_HOME": "/tmp",
        },
    )
    assert result.returncode == 2
    assert "LEDGERPUSH_REDIS_URL" in result.stderr


def test_production_requires_secret_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker", "jobs", "list"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "LEDGERPUSH_ENV": "production", "LEDGERPUSH_HOME": "/tmp"},
    )
    assert result.returncode == 2
    assert "LEDGERPUSH_SECRET_KEY" in result.stderr


# --- The Docker image and the compose files (checked without Docker) -------------------

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.simulators.yml")
IMAGE = "${LEDGERPUSH_IMAGE:-ledgerpush:local}"
THIRD_PARTY_IMAGES = {"redis", "postgres"}


def _locked() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock as {canonical name: (version, hashes)}; fails on a loose line."""
    locked: dict[str, tuple[str, list[str]]] = {}
    text = (ROOT / "requirements.lock").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, pinned, version = requirement.partition("==")
        assert pinned and version, f"requirements.lock: {requirement} is not pinned with =="
        hashes = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=sha256:")]
        assert hashes, f"requirements.lock: {requirement} has no sha256 hash"
        locked[canonicalize_name(name)] = (version, hashes)
    return locked


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def _compose(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())  # type: ignore[no-any-return]


def test_lock_pins_every_dependency_within_pyprojects_bounds() -> None:
    locked = _locked()
    environment = {"python_version": "3.11", "python_full_version": "3.11.0"}
    for requirement in _project_requirements():
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is not in requirements.lock"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {requirement.name}=={version}, outside {requirement}"
        )
        for extra in requirement.extras:  # celery[redis], psycopg[binary]: what they add
            for needed in map(Requirement, metadata.requires(requirement.name) or []):
                wanted = needed.marker and needed.marker.evaluate({**environment, "extra": extra})
                if wanted and "extra" in str(needed.marker):
                    assert canonicalize_name(needed.name) in locked, (
                        f"{requirement.name}[{extra}] needs {needed.name}, not in the lock"
                    )


def test_compose_services_run_the_built_image_with_healthchecks() -> None:
    for file in COMPOSE_FILES:
        for name, service in _compose(file)["services"].items():
            if name in THIRD_PARTY_IMAGES and file == "docker-compose.yml":
                assert service["image"].split(":")[0] == name
            elif "image" in service or file == "docker-compose.yml":
                assert service["image"] == IMAGE, f"{file}: {name} does not run the image"
                assert service["build"] == ".", f"{file}: {name} does not build the image"
            command = " ".join(service.get("command") or [])
            assert "pip install" not in command, f"{file}: {name} installs at start-up"
            for volume in service.get("volumes") or []:
                assert not volume.startswith((".", "/")), f"{file}: {name} bind-mounts {volume}"


def test_compose_starts_each_service_after_what_it_needs() -> None:
    services = _compose("docker-compose.yml")["services"]
    one_shot = {"migrate"}
    assert {"redis", "postgres", "migrate", "worker", "beat", "web", "ingest"} <= set(services)
    for name, service in services.items():
        if name in one_shot:
            assert service["restart"] == "no" and service["healthcheck"] == {"disable": True}
        else:
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    for name in ("worker", "beat", "web", "ingest"):
        assert services[name]["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
        assert services[name]["command"] == ["ledgerpush", name]
    simulated = _compose("docker-compose.simulators.yml")["services"]
    for name in ("worker", "beat", "web", "ingest"):
        for simulator in ("sim-eaccounting", "sim-economic"):
            assert simulated[name]["depends_on"][simulator] == {"condition": "service_healthy"}
    for simulator in ("sim-eaccounting", "sim-economic"):
        assert simulated[simulator]["healthcheck"]["test"][0] == "CMD"


def test_compose_takes_secrets_from_the_environment() -> None:
    environment = _compose("docker-compose.yml")["services"]["worker"]["environment"]
    for secret in ("LEDGERPUSH_SECRET_KEY", "LEDGERPUSH_WEB_ADMIN_PASSWORD"):
        assert environment[secret].startswith(f"${{{secret}:?"), f"{secret} has a default"
    assert "${POSTGRES_PASSWORD:?" in environment["LEDGERPUSH_DATABASE_URL"]
    for name in ("LEDGERPUSH_EACCOUNTING_CLIENT_SECRET", "LEDGERPUSH_ECONOMIC_APP_SECRET_TOKEN"):
        assert environment[name] is None, f"{name}: passed on from the environment, no value"


def test_compose_migrate_command_migrates_the_ledger(tmp_path: Path) -> None:
    command = _compose("docker-compose.yml")["services"]["migrate"]["command"]
    assert command[:2] == ["python", "-c"]
    ledger = tmp_path / "ledger.db"
    env = {**os.environ, "LEDGERPUSH_DATABASE_URL": f"sqlite:///{ledger}"}
    subprocess.run([sys.executable, *command[1:]], cwd=ROOT, env=env, check=True, timeout=120)
    with sqlite3.connect(ledger) as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == ScriptDirectory(str(MIGRATIONS)).get_current_head()


def _dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split into stages."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_installs_from_the_lock_and_runs_as_non_root() -> None:
    stages = _dockerfile_stages()
    build, final = stages[0], stages[-1]
    installs = [line for line in build if line.startswith("RUN pip install")]
    assert any("--require-hashes" in line and "requirements.lock" in line for line in installs)
    assert all("--no-deps" in line for line in installs), "every install takes the lock's pins"
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image runs as root"
    assert any(line.startswith("HEALTHCHECK ") for line in final)
    assert final[-1] == 'CMD ["ledgerpush", "worker"]'
    base = ROOT.joinpath("Dockerfile").read_text().split("ARG PYTHON_IMAGE=")[1].split()[0]
    version = base.split(":")[1].split("-")[0]
    assert base.startswith("python:") and "slim" in base
    assert tuple(map(int, version.split("."))) >= (3, 11)


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r.strip()]
    rules = [r for r in rules if not r.startswith("#")]
    assert rules[0] == "*", ".dockerignore starts by leaving everything out"
    admitted = {r.removeprefix("!").rstrip("/") for r in rules if r.startswith("!")}
    for stage in _dockerfile_stages():
        for line in stage:
            if line.startswith("COPY ") and "--from=" not in line:
                for source in line.split()[1:-1]:
                    assert source.rstrip("/") in admitted, f".dockerignore leaves out {source}"


# --- The image's health check (docker/healthcheck.py), run as the container runs it ----

HEALTHCHECK = ROOT / "docker" / "healthcheck.py"


def _healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=60,
    )


def test_healthcheck_checks_the_command_the_container_runs(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("healthcheck", HEALTHCHECK)
    assert spec and spec.loader
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/opt/ledgerpush/bin/python\0/opt/ledgerpush/bin/ledgerpush\0beat\0")
    assert healthcheck.running_command(cmdline) == "beat"
    cmdline.write_bytes(b"python\0-c\0from worker.ledger.db import engine; engine()\0")
    assert healthcheck.running_command(cmdline) is None
    assert _healthcheck("nonsense").returncode == 2


def test_healthcheck_beat_wants_a_recently_saved_schedule(tmp_path: Path) -> None:
    home = str(tmp_path)
    assert _healthcheck("beat", LEDGERPUSH_HOME=home).returncode == 1
    schedule = tmp_path / "beat-schedule.dat"
    schedule.write_bytes(b"")
    assert _healthcheck("beat", LEDGERPUSH_HOME=home).returncode == 0
    an_hour_ago = time.time() - 3600
    os.utime(schedule, (an_hour_ago, an_hour_ago))
    result = _healthcheck("beat", LEDGERPUSH_HOME=home)
    assert result.returncode == 1 and "last written" in result.stdout


def test_healthcheck_ingest_wants_a_heartbeat_of_a_drainer_on_this_host() -> None:
    from worker.transport.ingest import Drainer

    host = unique("drainer-host")
    Drainer(name=f"{host}:1:a")._tick()
    assert _healthcheck("ingest", host).returncode == 0
    result = _healthcheck("ingest", unique("silent-host"))
    assert result.returncode == 1 and "no heartbeat" in result.stdout


def test_healthcheck_web_asks_the_health_endpoint(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    log = (tmp_path / "web.log").open("wb")
    web = subprocess.Popen(
        [sys.executable, "-m", "worker", "web"],
        cwd=ROOT,
        env={**os.environ, "LEDGERPUSH_WEB_PORT": port},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _healthcheck("web", LEDGERPUSH_WEB_PORT=port).returncode == 0, 60)
    finally:
        web.terminate()
        web.wait(30)
        log.close()
    result = _healthcheck("web", LEDGERPUSH_WEB_PORT=port)
    assert result.returncode == 1 and "ConnectionRefusedError" in result.stdout


def test_healthcheck_worker_pings_its_node(start_worker: Callable[..., WorkerProcess]) -> None:
    worker = start_worker("healthcheck", concurrency=1)
    result = _healthcheck("worker", f"{worker.name}@{socket.gethostname()}")
    assert result.returncode == 0, result.stdout
