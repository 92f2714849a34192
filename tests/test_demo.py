"""`ledgerpush demo --once --json` from a clean home, as CI and a new user run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_once_settles_every_job(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LEDGERPUSH_") and not k.startswith("_LEDGERPUSH")
    }
    env["LEDGERPUSH_DEMO_HOME"] = str(tmp_path / "demo")
    result = subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--once", "--json", "--timeout", "150"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["jobs"] == 55
    assert summary["by_state"].get("failed") == 1  # the payload with a float amount
    assert summary["by_tenant"]["acme-fi"] == {"waiting_for_reauth": 9}  # its password changed
    for tenant in ("acme-no", "acme-nl", "acme-se", "acme-dk", "acme-vn-no"):
        assert summary["by_tenant"][tenant].get("booked", 0) >= 9
    providers = {tenant: about["provider"] for tenant, about in summary["tenants"].items()}
    assert providers == {
        "acme-no": "eaccounting", "acme-nl": "eaccounting", "acme-se": "eaccounting",
        "acme-fi": "eaccounting", "acme-dk": "economic", "acme-vn-no": "vismanet",
    }  # fmt: skip
    assert summary["provider_calls"] > 0

    # The demo says how to list its jobs; that command finds them after it stopped.
    assert "jobs list" in result.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "worker", "jobs", "list", "--json", "--limit", "100"],
        cwd=ROOT, env={**env, "LEDGERPUSH_HOME": str(tmp_path / "demo")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert len(json.loads(listed.stdout)) == 55


def test_a_stack_process_that_does_not_come_up_is_named_with_its_log(tmp_path: Path) -> None:
    import socket

    import pytest

    from worker.devtools.localstack import wait_until_up

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    log_file = tmp_path / "web.log"
    with pytest.raises(RuntimeError) as refused:
        wait_until_up(f"http://127.0.0.1:{port}/health", timeout=0.5, log_file=log_file)
    assert str(log_file) in str(refused.value)
