"""Set-up files agree with the code: compose uses real setting names, the CLI has help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_compose_uses_only_known_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = {f"LEDGERPUSH_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose["services"].items():
        for variable in service.get("environment") or {}:
            if variable.startswith("LEDGERPUSH_"):
                assert variable in known, f"{name}: {variable} is not a setting"
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
