"""Smoke tests: the throughput benchmark still runs end to end with tiny sizes and reports
its same-run anchors and its latency-bound sweep over in-flight slots; the memory benchmark
reports each worker per tier of tenants; the month-end burst reports its drain against the
ideal. They check that figures are there, never what they are."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_bench(script: str, *args: str) -> dict[str, Any]:
    """`bench/<script> ARGS --json`, its output read."""
    command = [sys.executable, str(ROOT / "bench" / script), *args, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=580, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_throughput_reports_the_floor_and_the_lean_worker(tmp_path: Path) -> None:
    result = run_bench(
        "throughput.py",
        "--invoices", "8", "--tenants", "4", "--customers", "1", "--workers", "1",
        "--concurrency", "2", "--latency-ms", "5", "--latency-seconds", "1",
        "--no-baseline", "--profile", str(tmp_path),
    )  # fmt: skip

    assert list(result)[:4] == ["benchmark", "machine", "parameters", "same_run_ratios"]
    anchors = result["anchors"]
    assert anchors["floor"]["booked"] == anchors["floor"]["invoices"] == 8
    assert anchors["lean_worker"]["booked"] == anchors["lean_worker"]["invoices"] == 8
    assert anchors["ledger_writes_alone"]["invoices"] == 8
    assert result["ledgerpush_sqlite"]["booked"] == 8
    ratios = result["same_run_ratios"]["sqlite"]
    # None only where an anchor's run was too short for /proc's clock ticks to see its CPU.
    for multiple in ("cpu_per_invoice_x_floor", "cpu_per_invoice_x_lean_worker"):
        assert ratios[multiple] is None or ratios[multiple] > 0
    assert set(ratios["invoices_per_second"]) == {"ledgerpush", "lean_worker", "floor"}
    # py-spy sampled the worker over the run (a short one may give few samples or none).
    profile = result["ledgerpush_sqlite"]["cpu_split_py_spy"]
    assert profile["samples"] >= 0 and isinstance(profile["split"], dict)
    assert list((tmp_path / "run").glob("worker-*.txt")) or profile["samples"] == 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_memory_reports_worker_rss_and_reference_cache_per_tier() -> None:
    result = run_bench(
        "memory.py",
        "--tenants", "3,6", "--invoices-per-tenant", "1", "--workers", "1",
        "--concurrency", "2", "--max-entries", "10",
    )  # fmt: skip

    assert [row["tenants"] for row in result["tiers"]] == [0, 3, 6]
    assert result["tiers"][-1]["states"] == {"booked": 6}
    for row in result["tiers"]:
        (worker,) = row["workers"]
        assert worker["rss_mib"] > 0
        assert worker["reference_cache_bound"] == 10
    assert 0 < result["tiers"][-1]["workers"][0]["reference_cache_entries"] <= 10
    assert "growth_mib_per_1000_tenants" in result


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_burst_reports_the_drain_against_the_ideal() -> None:
    result = run_bench(
        "burst.py",
        "--tenants", "6", "--invoices", "60", "--latency-ms", "5", "--workers", "1",
        "--concurrency", "2", "--customers", "1", "--producers", "2",
    )["result"]  # fmt: skip

    assert result["tenants"] == {
        "big": 1, "small": 5, "big_invoices": 30, "small_invoices": 30,
        "invoices_per_big_tenant": "30", "invoices_per_small_tenant": "6",
    }  # fmt: skip
    assert result["booked"] == result["invoices"] == 60
    assert result["responses_429"] == 0
    assert result["drain_seconds"] > 0
    assert result["ideal_seconds"] == max(
        result["ideal"]["slowest_tenant"]["seconds"],
        result["ideal"]["worker_cpu_over_cores"]["seconds"],
    )
    assert set(result["allowed_rates"]) == {"eaccounting", "economic", "vismanet"}
    assert set(result["small_tenants_enqueue_to_booked_s"]) == {"p50", "p95", "p99", "max"}
    assert sum(bucket["all"] for bucket in result["booked_per_interval"]) == 60
    assert result["provider_calls_per_invoice"]["all"] > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_throughput_sweeps_in_flight_slots_at_a_fixed_latency() -> None:
    result = run_bench(
        "throughput.py",
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
