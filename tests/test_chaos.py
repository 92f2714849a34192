"""`ledgerpush chaos` as CI runs it: a few hundred jobs, workers and Redis killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import create_postgres_database, drop_postgres_database, postgres_admin_url

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "enqueued", "booked", "failed", "needs_review", "lost", "duplicates",
    "worker_kills", "redis_restarts", "faults_injected", "seconds",
}  # fmt: skip


def test_small_chaos_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """When the suite runs on PostgreSQL (LEDGERPUSH_TEST_DATABASE_URL), the chaos run's
    ledger is an empty PostgreSQL database of its own; else SQLite in its home."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LEDGERPUSH_") and not k.startswith("_LEDGERPUSH")
    }
    env["LEDGERPUSH_CHAOS_HOME"] = str(tmp_path / "chaos")
    server = os.environ.get("LEDGERPUSH_TEST_DATABASE_URL")
    database = create_postgres_database(server) if server else None
    if server and database:
        base = postgres_admin_url(server).rpartition("/")[0]
        env["LEDGERPUSH_CHAOS_DATABASE_URL"] = f"{base}/{database}"
    command = ["chaos", "--jobs", "200", "--kills", "4", "--seed", "1"]
    command += ["--json", "--timeout", "100"]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "worker", *command],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        if server and database:
            drop_postgres_database(server, database)
    assert result.stdout.strip(), result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert set(figures) == KEYS
    assert (figures["lost"], figures["duplicates"]) == (0, 0), result.stderr[-3000:]
    assert result.returncode == 0
    assert figures["enqueued"] == 200 and figures["booked"] + figures["failed"] == 200
    assert figures["worker_kills"] == 4 and figures["redis_restarts"] == 1
    assert figures["faults_injected"] > 0
    assert figures["seconds"] < 120
