"""Smoke tests: the throughput benchmark still runs end to end with tiny sizes and reports
its same-run anchors, and its latency-bound sweep over in-flight slots. They check that
figures are there, never what they are."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _throughput(*options: str) -> dict[str, Any]:
    command = [sys.executable, str(ROOT / "bench" / "throughput.py"), *options, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=580, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_throughput_reports_the_floor_and_the_lean_worker() -> None:
    result = _throughput(
        "--invoices", "8", "--tenants", "4", "--customers", "1", "--workers", "1",
        "--concurrency", "2", "--latency-ms", "5", "--latency-seconds", "1", "--no-baseline",
    )  # fmt: skip

    assert list(result)[:4] == ["benchmark", "machine", "parameters", "same_run_ratios"]
    anchors = result["anchors"]
    assert anchors["floor"]["booked"] == anchors["floor"]["invoices"] == 8
    assert anchors["lean_worker"]["booked"] == anchors["lean_worker"]["invoices"] == 8
    assert result["ledgerpush_sqlite"]["booked"] == 8
    ratios = result["same_run_ratios"]["sqlite"]
    assert ratios["cpu_per_invoice_x_floor"] > 0
    assert ratios["cpu_per_invoice_x_lean_worker"] > 0
    assert set(ratios["invoices_per_second"]) == {"ledgerpush", "lean_worker", "floor"}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_throughput_sweeps_in_flight_slots_at_a_fixed_latency() -> None:
    result = _throughput(
        "--latency-ms", "20", "--slots", "2,4", "--invoices", "20", "--tenants", "4",
        "--workers", "1", "--customers", "1", "--no-baseline", "--no-anchors",
    )  # fmt: skip

    sweep = result["latency_bound_sqlite"]
    assert list(sweep["slots"]) == ["2 per process", "4 per process"]
    for slots, point in zip((2, 4), sweep["slots"].values(), strict=True):
        assert point["in_flight_slots"] == slots
        assert point["booked"] == point["invoices"] >= 8 * slots  # --jobs-per-slot 8
        assert point["concurrency_bound_limit"] == round(slots / (2 * 0.020), 1)
        assert point["ratio_to_limit"] > 0
        assert point["worker_cpu_ms_per_invoice"] > 0
        assert {"p50", "p95"} <= set(point["service_ms"])
    # Tenants were added beyond the 4 asked for, so the rate limiter does not cap a point.
    assert sweep["tenants"] > 4
    assert sweep["eaccounting_tenant_share_of_its_rate_limit_at_highest_bound"] <= 0.5
