"""The three simulators (eAccounting, e-conomic, Visma.net ERP) served from a child process
of a local stack (localstack.py), so that their CPU is not the caller's; driven by
commands over a pipe.

Options: `latency_ms` (every call, as `Faults.latency_ms`), `token_lifetime_seconds` and
`rate_limit_per_minute` (eAccounting), `ec_calls_per_day` (e-conomic), `vn_queued_share`
and `vn_queued_seconds` (the share of Visma.net releases answered `Queued`, and how long
each takes to be done).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.transport.children import arm_in_child

if TYPE_CHECKING:
    from worker.devtools.localstack import LocalStack

#: The apps the child's simulators know (the stack's settings name them).
EA_CLIENT = ("ledgerpush-bench", "bench-secret")
EC_APP = ("bench-app-secret", "bench-app-public")


class QueuedReleases:
    """ASGI middleware in front of the Visma.net simulator: counts the releases it
    answered `Queued` (the floor of calls per invoice has one status read for each)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not path.endswith("/action/release")
        ):
            await self.app(scope, receive, send)
            return

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.body" and b'"Queued"' in message.get("body", b""):
                self.count += 1
            await send(message)

        await self.app(scope, receive, watch)


class SimulatorProcess:
    """The simulators in a spawned child process; `call` runs a command there (connect,
    companies, log, reset_log, token_calls, ea_config, faults) and returns its answer."""

    def __init__(self, home: Path, env: dict[str, str], **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_main, args=(child, os.getpid(), home, env, options), name="simulators",
            daemon=True,
        )  # fmt: skip
        self.process.start()
        if not self.conn.poll(60):
            raise RuntimeError("the simulators did not start")
        #: The settings that point at the simulators.
        self.env: dict[str, str] = self.conn.recv()

    def call(self, command: str, args: Any = None, timeout: float = 600) -> Any:
        self.conn.send((command, args))
        if not self.conn.poll(timeout):
            raise RuntimeError(f"simulator command {command} timed out")
        answer = self.conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call("stop", timeout=20)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


def _main(conn: Any, parent: int, home: Path, env: dict[str, str], options: dict[str, Any]) -> None:
    """The child: the simulators over HTTP, then commands from `conn` until `stop`."""
    arm_in_child(parent)
    os.environ.update(env)  # connecting a tenant writes it to the stack's ledger
    from worker.devtools.localstack import LocalStack
    from worker.simulators.common import Faults
    from worker.simulators.eaccounting import EAccountingSimulator
    from worker.simulators.economic import EconomicSimulator
    from worker.simulators.vismanet import create_simulator

    latency = float(options.get("latency_ms", 0))
    ea = EAccountingSimulator(
        client_id=EA_CLIENT[0],
        client_secret=EA_CLIENT[1],
        token_lifetime_seconds=float(options.get("token_lifetime_seconds", 3600)),
        rate_limit_per_minute=int(options.get("rate_limit_per_minute", 600)),
        faults=Faults(latency_ms=latency),
    )
    ec = EconomicSimulator(
        app_secret_token=EC_APP[0],
        app_public_token=EC_APP[1],
        rate_limit_per_day=int(options.get("ec_calls_per_day", 10_000_000)),
        faults=Faults(latency_ms=latency),
    )
    vn = create_simulator(
        faults=Faults(latency_ms=latency),
        seed=1,
        release_queued_rate=float(options.get("vn_queued_share", 0.0)),
        release_queued_seconds=float(options.get("vn_queued_seconds", 0.1)),
    )
    queued = QueuedReleases(vn.app)
    vn.app = queued  # type: ignore[assignment]  # served in its place
    stack = LocalStack(home=home, env={}, owns_process=False)
    stack.start_simulators({"eaccounting": ea, "economic": ec, "vismanet": vn})
    conn.send(dict(stack.env))
    while True:
        command, args = conn.recv()
        try:
            if command == "stop":
                stack.stop()
                conn.send(None)
                return
            conn.send(_command(stack, command, args, queued))
        except Exception as exc:
            conn.send(RuntimeError(f"{command}: {type(exc).__name__}: {exc}"))


def _command(stack: LocalStack, command: str, args: Any, queued: QueuedReleases) -> Any:
    from worker.devtools.localstack import simulated_tenant

    ea, ec, vn = (stack.sims[name] for name in ("eaccounting", "economic", "vismanet"))
    if command == "connect":  # [(tenant id, provider, country)]
        return stack.connect_tenants(args)
    if command == "companies":  # the same, without the ledger rows: their add_tenant arguments
        return [simulated_tenant(stack, p, t, c) for t, p, c in args]
    if command == "log":
        return {"ea": ea.log.snapshot(), "ec": ec.log.snapshot(), "vn": vn.log.snapshot(),
                "vn_releases_queued": queued.count}  # fmt: skip
    if command == "reset_log":
        for sim in (ea, ec, vn):
            sim.log.reset()
        queued.count = 0
        with ea.lock:
            ea.tokens.calls.clear()
            ea.tokens.company_calls.clear()
        return True
    if command == "token_calls":
        with ea.lock:
            per_company: dict[str, int] = {}
            for (company, grant), count in ea.tokens.company_calls.items():
                if grant == "refresh_token":
                    per_company[company] = per_company.get(company, 0) + count
            return {"by_grant": dict(ea.tokens.calls), "refresh_by_company": per_company}
    if command == "ea_config":
        ea.update_config(args)
        return True
    if command == "faults":
        for sim in (ea, ec, vn):
            sim.faults.update(args)
        return True
    raise ValueError(f"unknown simulator command {command!r}")
