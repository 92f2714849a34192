"""A whole ledgerpush on one machine, for `ledgerpush demo` and `ledgerpush chaos`.

A fresh home directory (wiped), settings in this process's environment before anything
reads them, the simulators (eAccounting, e-conomic, Visma.net ERP) served from this
process over real HTTP, tenants connected to them, and `ledgerpush` child processes
(workers, web) logging into the home.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.transport.children import die_with_parent

if TYPE_CHECKING:
    from worker.simulators.common import SimulatorServer
    from worker.simulators.eaccounting import EAccountingSimulator
    from worker.simulators.economic import EconomicSimulator
    from worker.simulators.vismanet import VismaNetSimulator

#: Settings of the developer's shell that must not leak into a throw-away stack.
FOREIGN_SETTINGS = ("LEDGERPUSH_REDIS_URL", "LEDGERPUSH_DATABASE_URL", "LEDGERPUSH_SECRET_KEY")
EA_SCOPES = [
    "ea:api",
    "offline_access",
    "ea:sales",
    "ea:accounting_readonly",
    "ea:purchase_readonly",
]
#: The Visma.net app a local stack's settings name (the simulator's default app).
VISMANET_APP = ("ledgerpush", "sim-secret")
#: The simulator's bank-transfer payment method: a Visma.net tenant must map one.
VISMANET_PAYMENT_METHOD = "BANK"


@dataclass
class LocalStack:
    home: Path
    env: dict[str, str]
    ea: EAccountingSimulator | None = None
    ec: EconomicSimulator | None = None
    vn: VismaNetSimulator | None = None
    servers: list[SimulatorServer] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def provider_calls(self) -> int:
        return sum(sim.log.snapshot()["total"] for sim in self.simulators())

    def simulators(self) -> list[Any]:
        """The simulators started, each with `log` and `faults`."""
        return [sim for sim in (self.ea, self.ec, self.vn) if sim is not None]


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


def start_simulators(
    stack: LocalStack,
    ea: EAccountingSimulator,
    ec: EconomicSimulator,
    vn: VismaNetSimulator | None = None,
) -> None:
    """Serve the simulators from this process and point the settings at them; Visma.net
    gets a simulator with the app of VISMANET_APP unless one is given."""
    from worker.simulators.common import SimulatorServer
    from worker.simulators.vismanet import create_simulator

    vn = vn if vn is not None else create_simulator()
    vn.add_app(*VISMANET_APP)
    servers = [SimulatorServer(sim.app).start() for sim in (ea, ec, vn)]
    ea_server, ec_server, vn_server = servers
    stack.ea, stack.ec, stack.vn = ea, ec, vn
    stack.servers += servers
    setenv(
        stack,
        {
            "LEDGERPUSH_EACCOUNTING_API_URL": f"{ea_server.url}/v2",
            "LEDGERPUSH_EACCOUNTING_IDENTITY_URL": ea_server.url,
            "LEDGERPUSH_ECONOMIC_API_URL": ec_server.url,
            "LEDGERPUSH_ECONOMIC_INSTALL_URL": f"{ec_server.url}/_control/install",
            "LEDGERPUSH_VISMANET_API_URL": vn_server.url,
            "LEDGERPUSH_VISMANET_IDENTITY_URL": vn_server.url,
            "LEDGERPUSH_VISMANET_CLIENT_ID": VISMANET_APP[0],
            "LEDGERPUSH_VISMANET_CLIENT_SECRET": VISMANET_APP[1],
        },
    )


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


def connect_eaccounting(stack: LocalStack, tenant_id: str, country: str, company: str) -> None:
    """A simulated company and a tenant holding tokens for it, as after the consent flow."""
    from worker.tenancy.tenants import add_tenant

    credentials = eaccounting_company(stack, country, company)
    add_tenant(tenant_id, "eaccounting", country, credentials, display_name=company)


def eaccounting_company(stack: LocalStack, country: str, company: str) -> dict[str, Any]:
    """A simulated company, and the credentials the consent flow would give for it."""
    assert stack.ea is not None
    stack.ea.add_company(company, country)
    tokens = stack.ea.issue_tokens(company, EA_SCOPES)
    return {
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "expires_at": time.time() + float(tokens["expires_in"]),
        "scope": tokens.get("scope", ""),
    }


def connect_economic(stack: LocalStack, tenant_id: str, country: str) -> None:
    """A simulated agreement and a tenant holding its grant token."""
    from worker.tenancy.tenants import add_tenant

    credentials = economic_agreement(stack, tenant_id, country)
    add_tenant(tenant_id, "economic", country, credentials, display_name=tenant_id)


def economic_agreement(stack: LocalStack, tenant_id: str, country: str) -> dict[str, Any]:
    """A simulated agreement for the tenant, and the credentials holding its grant token."""
    assert stack.ec is not None
    return {"grant_token": stack.ec.add_agreement(country, grant_token=f"grant-{tenant_id}")}


def vismanet_company(tenant_id: str) -> str:
    """The simulated company tenant id `connect_vismanet` gives a tenant by default."""
    return f"{tenant_id}-company"


def connect_vismanet(
    stack: LocalStack,
    tenant_id: str,
    country: str,
    company: str | None = None,
    display_name: str | None = None,
    **mapping: Any,
) -> None:
    """A simulated company and a tenant holding its company tenant id, as after
    `ledgerpush tenants add ID --provider vismanet --tenant-id ...`; the payment method is
    mapped to the simulator's bank transfer unless `mapping` names another."""
    from worker.tenancy.tenants import add_tenant

    credentials = vismanet_company_of(stack, tenant_id, company, display_name)
    mapping = {"payment_method": VISMANET_PAYMENT_METHOD, **mapping}
    add_tenant(tenant_id, "vismanet", country, credentials,
               display_name=display_name or tenant_id, mapping=mapping)  # fmt: skip


def vismanet_company_of(
    stack: LocalStack, tenant_id: str, company: str | None = None, display_name: str | None = None
) -> dict[str, Any]:
    """A simulated company for the tenant, and the credentials naming its company tenant
    id."""
    assert stack.vn is not None
    company = company or vismanet_company(tenant_id)
    stack.vn.add_company(company, display_name or tenant_id)
    return {"tenant_id": company}


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
