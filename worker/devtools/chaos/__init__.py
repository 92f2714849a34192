"""`ledgerpush chaos`: exactly-once effects, demonstrated under failure.

In its own home (`.ledgerpush/chaos`, wiped; `LEDGERPUSH_CHAOS_HOME` moves it) it starts
an embedded Redis with the persistence ledgerpush ships (AOF, appendfsync always), a
ledger (SQLite in the home; `--database postgresql`: a throwaway database on a server;
`LEDGERPUSH_CHAOS_DATABASE_URL`: an empty database given), the three simulators, worker
processes and a reconciler loop, and enqueues invoices, credit notes and payments over
several tenants of each provider (eAccounting, e-conomic, Visma.net ERP). While they run it injects the faults switched on
(FAULTS): SIGKILLs workers at random moments — some right after a remote write was
applied, before the worker heard back — and starts new ones; SIGKILLs Redis once and
restarts it on the same port and data; seeded provider faults (5xx, timeouts whose write
is applied after the client gave up, connections dropped before and after the write was
applied, 429s); one window each of a database refusing connections, a read-only
database (faults.py) and a provider-wide outage; malformed raw messages
pushed onto the queues among the jobs. It expires every access token twice. Then it
waits until every job is settled and compares the ledger with what the simulators hold.

lost       enqueued jobs not settled, booked without their document (or payment) in the
           accounting system, or failed (other than needs_review) although it is there
duplicates documents beyond the first per job (booked invoices and credit notes by
           e-conomic's references.other / eAccounting's YourReference / Visma.net's
           externalReference, drafts (Visma.net: unreleased documents) left beside a
           booked one, payments by reference and amount (Visma.net: paymentRef))
poison     malformed messages pushed, and how many of them are in `ledgerpush.poison`

The package: `plan` (faults, settings, options, tenants), `jobs` (the jobs of a run),
`session` (the stack and its work), `schedule` (the faults done to it), `faults` (the
database faults and poison messages), `tally` (the simulators against the ledger),
`report` and `command` (the run).
"""

from worker.devtools.chaos.command import run
from worker.devtools.chaos.jobs import Plan, gross_of, plan_jobs
from worker.devtools.chaos.plan import (
    DEFAULT_FAULTS,
    FAULTS,
    SETTINGS,
    TENANTS,
    Options,
    TenantPlan,
    parse_faults,
)
from worker.devtools.chaos.report import Report, result_table
from worker.devtools.chaos.schedule import WRITE_PATHS
from worker.devtools.chaos.tally import RemoteState

__all__ = [
    "DEFAULT_FAULTS",
    "FAULTS",
    "SETTINGS",
    "TENANTS",
    "WRITE_PATHS",
    "Options",
    "Plan",
    "RemoteState",
    "Report",
    "TenantPlan",
    "gross_of",
    "parse_faults",
    "plan_jobs",
    "result_table",
    "run",
]
