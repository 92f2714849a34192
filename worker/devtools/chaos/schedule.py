"""The fault schedule of a chaos run: which events happen (worker kills, Redis restarts,
token expiries, windows of database or provider trouble), and each one done."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.devtools.chaos.plan import old_retry_budget

if TYPE_CHECKING:
    from worker.devtools.chaos.session import Chaos
    from worker.devtools.processes import ChildProcess

HOLD_SECONDS = 20.0
#: Faults that last a window of `--window` seconds, and the event that starts each.
WINDOWS = {"db-outage": "db-outage", "db-readonly": "db-readonly", "provider-outage": "outage"}
#: Paths of the remote writes a kill can follow, per simulator.
WRITE_PATHS = {
    "eaccounting": (
        r"/customerinvoicedrafts$",
        r"/customerinvoicedrafts/[^/]+/convert$",
        r"/customerinvoices/[^/]+/payments$",
    ),
    "economic": (r"/invoices/drafts$", r"/invoices/booked$", r"/journals/\d+/vouchers$"),
    # Create invoice / credit note, their release, payment create, payment release (the
    # ERP answers 202 and releases it in the background).
    "vismanet": (
        r"/v2/customerinvoice$",
        r"/v2/customerCreditNote$",
        r"/v1/(customerinvoice|customerCreditNote)/[^/]+/action/release$",
        r"/v1/customerPayment$",
        r"/v1/customerPayment/[^/]+/action/release$",
    ),
}


class FaultSchedule:
    """The faults of one run, done to its stack."""

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos

    def events(self) -> list[str]:
        faults = self.chaos.options.faults
        events = ["kill"] * self.chaos.kills + ["tokens", "tokens"]
        events += ["redis"] if "redis-restart" in faults else []
        events += [event for fault, event in WINDOWS.items() if fault in faults]
        self.chaos.rng.shuffle(events)
        while events[0] in ("redis", *WINDOWS.values()):  # let some work start first
            events.append(events.pop(0))
        return events

    def fault_window(self, event: str, say: Callable[[str], None]) -> None:
        """One window of a database outage, a read-only database or a provider outage."""
        assert self.chaos.database is not None
        seconds = self.chaos.options.window
        if event == "outage":
            start, end = self._provider_outage()
            what = "every provider answers 503 to everything"
            self.chaos.report.provider_outages += 1
        elif event == "db-outage":
            start, end = self.chaos.database.outage()
            what = f"the {self.chaos.database.kind} ledger refuses connections"
            seconds = self.chaos.database.window(self.database_seconds())
            self.chaos.report.db_outages += 1
        else:
            start, end = self.chaos.database.read_only()
            what = f"the {self.chaos.database.kind} ledger refuses writes"
            seconds = self.chaos.database.window(self.database_seconds())
            self.chaos.report.db_readonly_windows += 1
        start()
        say(f"{what} for {seconds:.0f}s")
        try:
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                self.chaos.supervise(say)
                time.sleep(0.5)
        finally:
            end()
        say(f"window over: {what} no longer")

    def database_seconds(self) -> float:
        """A database window outlasts the retries the old count (8) gave a job."""
        return max(self.chaos.options.window, 1.5 * old_retry_budget())

    def _provider_outage(self) -> tuple[Callable[[], None], Callable[[], None]]:
        """The simulators' outage switch (as `PUT /_control/faults {"outage": true}`)."""
        assert self.chaos.stack is not None
        sims = self.chaos.stack.simulators()

        def switch(on: bool) -> None:
            for sim in sims:
                sim.faults.update({"outage": on})

        return lambda: switch(True), lambda: switch(False)

    def kill_worker(self, say: Callable[[str], None]) -> None:
        """SIGKILL a worker: right after a remote write every other time, else at random."""
        alive = [w for w in self.chaos.workers if w.alive]
        if not alive:
            self.chaos.start_worker()
            return
        victim: ChildProcess | None = None
        how = "at a random moment"
        if self.chaos.report.worker_kills % 2 == 0:
            victim, how = self._victim_after_write(alive, say)
        if victim is None:
            victim = self.chaos.rng.choice(alive)
        self.chaos.killed.add(victim)
        victim.kill()
        self._release_holds()
        self.chaos.report.worker_kills += 1
        say(f"killed worker pid {victim.pid} {how}")
        self.chaos.start_worker()

    def _victim_after_write(
        self, alive: list[ChildProcess], say: Callable[[str], None]
    ) -> tuple[ChildProcess | None, str]:
        assert self.chaos.stack is not None
        provider = self.chaos.rng.choice(tuple(WRITE_PATHS))
        sim: Any = self.chaos.stack.sims[provider]
        path = self.chaos.rng.choice(WRITE_PATHS[provider])
        sim.faults.update(
            {
                "hang_after_write_path": path,
                "hang_after_write_limit": 1,
                "hang_seconds": HOLD_SECONDS,
            }
        )
        deadline = time.monotonic() + 10
        while not sim.app.held and time.monotonic() < deadline:
            time.sleep(0.02)
        held = list(sim.app.held)
        if not held:
            self._release_holds()
            return None, "at a random moment (no write to follow)"
        owner = socket_owner(held[0].client[1] if held[0].client else 0, [w.pid for w in alive])
        victim = next((w for w in alive if w.pid == owner), None)
        if victim is None:
            return None, "at a random moment (writer not found)"
        self.chaos.report.kills_after_write += 1
        return victim, f"right after {held[0].method} {held[0].path} was applied"

    def _release_holds(self) -> None:
        assert self.chaos.stack is not None
        for sim in self.chaos.stack.simulators():
            sim.faults.update({"hang_after_write_path": ""})

    def restart_redis(self, say: Callable[[str], None]) -> None:
        assert self.chaos.stack is not None and self.chaos.stack.redis is not None
        redis = self.chaos.stack.redis
        redis.kill()
        say(f"killed Redis (port {redis.port}); restarting it on its AOF")
        time.sleep(self.chaos.rng.uniform(0.5, 2.0))
        redis.start()
        self.chaos.report.redis_restarts += 1
        say("Redis is back")

    def expire_tokens(self, say: Callable[[str], None]) -> None:
        assert self.chaos.stack is not None
        sims = self.chaos.stack.sims
        sims["eaccounting"].expire_access_tokens()
        if "vismanet" in sims:
            with sims["vismanet"].lock:
                sims["vismanet"].identity.expire()
        self.chaos.report.token_expiries += 1
        say("expired every eAccounting and Visma.net access token")


def socket_owner(port: int, pids: list[int]) -> int | None:
    """The process among `pids` whose TCP socket has local port `port` (Linux /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(parts[9])
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return pid
    return None
