"""Smoke tests: the throughput benchmark still runs end to end with tiny sizes and reports
its same-run anchors; the memory benchmark reports each worker per tier of tenants. They
check that figures are there, never what they are."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_throughput_reports_the_floor_and_the_lean_worker() -> None:
    command = [
        sys.executable, str(ROOT / "bench" / "throughput.py"),
        "--invoices", "8", "--tenants", "4", "--customers", "1", "--workers", "1",
        "--concurrency", "2", "--latency-ms", "5", "--latency-seconds", "1",
        "--no-baseline", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=580, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)

    assert list(result)[:4] == ["benchmark", "machine", "parameters", "same_run_ratios"]
    anchors = result["anchors"]
    assert anchors["floor"]["booked"] == anchors["floor"]["invoices"] == 8
    assert anchors["lean_worker"]["booked"] == anchors["lean_worker"]["invoices"] == 8
    assert result["ledgerpush_sqlite"]["booked"] == 8
    ratios = result["same_run_ratios"]["sqlite"]
    # None only where an anchor's run was too short for /proc's clock ticks to see its CPU.
    for multiple in ("cpu_per_invoice_x_floor", "cpu_per_invoice_x_lean_worker"):
        assert ratios[multiple] is None or ratios[multiple] > 0
    assert set(ratios["invoices_per_second"]) == {"ledgerpush", "lean_worker", "floor"}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_memory_reports_worker_rss_and_reference_cache_per_tier() -> None:
    command = [
        sys.executable, str(ROOT / "bench" / "memory.py"),
        "--tenants", "3,6", "--invoices-per-tenant", "1", "--workers", "1",
        "--concurrency", "2", "--max-entries", "10", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=580, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)

    assert [row["tenants"] for row in result["tiers"]] == [0, 3, 6]
    assert result["tiers"][-1]["states"] == {"booked": 6}
    for row in result["tiers"]:
        (worker,) = row["workers"]
        assert worker["rss_mib"] > 0
        assert worker["reference_cache_bound"] == 10
    assert 0 < result["tiers"][-1]["workers"][0]["reference_cache_entries"] <= 10
    assert "growth_mib_per_1000_tenants" in result
