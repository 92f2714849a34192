"""A whole ledgerpush on one machine, for `ledgerpush demo` and `ledgerpush chaos`.

A fresh home directory (wiped), settings in this process's environment before anything
reads them, a simulator of every provider (its `local` part) served from this process
over real HTTP, tenants connected to them, and `ledgerpush` child processes
(workers, web) logging into the home.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.transport.children import die_with_parent

if TYPE_CHECKING:
    from worker.simulators.common import SimulatorServer

#: Settings of the developer's shell that must not leak into a throw-away stack.
FOREIGN_SETTINGS = ("LEDGERPUSH_REDIS_URL", "LEDGERPUSH_DATABASE_URL", "LEDGERPUSH_SECRET_KEY")


@dataclass
class LocalStack:
    home: Path
    env: dict[str, str]
    #: The simulators served, by provider name (each with `log` and `faults`).
    sims: dict[str, Any] = field(default_factory=dict)
    servers: list[SimulatorServer] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def provider_calls(self) -> int:
        return sum(sim.log.snapshot()["total"] for sim in self.simulators())

    def simulators(self) -> list[Any]:
        """The simulators started, each with `log` and `faults`."""
        return list(self.sims.values())


def prepare_home(home: Path, env: dict[str, str]) -> LocalStack:
    """Wipe `home`, and put `env` (plus LEDGERPUSH_HOME) into this process's environment."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {"LEDGERPUSH_HOME": str(home), **env}
    for name in FOREIGN_SETTINGS:
        os.environ.pop(name, None)
    os.environ.update(env)
    return LocalStack(home=home, env=env)


def setenv(stack: LocalStack, settings: dict[str, str]) -> None:
    """Settings for this process and for every child started from now on."""
    os.environ.update(settings)
    stack.env.update(settings)


def start_simulators(stack: LocalStack, given: Mapping[str, Any] | None = None) -> None:
    """Serve a simulator of every provider from this process (the one `given` for it,
    else its local default) and point the settings at them."""
    from worker.providers import registry
    from worker.simulators.common import SimulatorServer

    for spec in registry.specs():
        local = spec.local
        if local is None:
            continue
        sim = (given or {}).get(spec.name) or local.create()
        server = SimulatorServer(sim.app).start()
        stack.sims[spec.name] = sim
        stack.servers.append(server)
        setenv(stack, local.settings(sim, server.url))


def start_process(stack: LocalStack, args: list[str], name: str) -> subprocess.Popen[bytes]:
    """`ledgerpush <args>` as a child process logging to `<home>/<name>.log`."""
    log = open(stack.home / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", *args],
        env={**os.environ, **stack.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent(),
    )
    stack.processes.append(process)
    return process


def wait_until_up(url: str, timeout: float = 90, log_file: Path | None = None) -> None:
    """Generous: on a busy machine a process takes a while to import and start."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code < 500:
                return
        time.sleep(0.2)
    where = f"see {log_file}" if log_file else "see the logs in the stack's home"
    raise RuntimeError(f"{url} did not come up within {timeout:.0f} s; {where}")


def connect(stack: LocalStack, provider: str, tenant_id: str, country: str, **options: Any) -> None:
    """A simulated company of the provider and a tenant connected to it, as after its
    connect flow (`options`: what the provider's simulator takes, e.g. the company)."""
    from worker.tenancy.tenants import add_tenant

    add_tenant(
        tenant_id,
        provider,
        country,
        **simulated_tenant(stack, provider, tenant_id, country, **options),
    )


def simulated_tenant(
    stack: LocalStack, provider: str, tenant_id: str, country: str, **options: Any
) -> dict[str, Any]:
    """A simulated company of the provider for the tenant (no ledger row yet): the
    tenant's `add_tenant` arguments (its credentials, display name and mapping)."""
    from worker.providers.registry import spec_for

    local = spec_for(provider).local
    assert local is not None, f"{provider} has no simulator for a local stack"
    tenant: dict[str, Any] = local.connect(stack.sims[provider], tenant_id, country, **options)
    return tenant


def stop(stack: LocalStack, timeout: float = 30) -> None:
    """SIGTERM every child (SIGKILL after `timeout`), then stop the simulators."""
    for process in stack.processes:
        if process.poll() is None:
            process.terminate()
    for process in stack.processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for server in stack.servers:
        server.stop()
