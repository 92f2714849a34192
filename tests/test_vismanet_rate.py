"""Visma.net's rate limits honoured under load: two clients of one tenant (two workers)
calling at 95 % of the simulator's allowed rate meet no 429 — the shared limiter paces
them and an exhausted `X-RateLimit-*` window pauses both until it resets."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.conftest import point_vismanet_at, unique, wait_for
from worker.providers.vismanet.client import VismaNetProvider
from worker.tenancy.tenants import add_tenant, get_tenant

LIMIT, WINDOW_SECONDS, WINDOWS = 20, 2, 3


@pytest.fixture
def sim(vn_sim: Any, vn_server: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    _, url = vn_server
    settings = point_vismanet_at(monkeypatch, url)
    # ledgerpush configured with the rate Visma allows (the headers are the second guard).
    monkeypatch.setattr(settings, "rate_per_hour", LIMIT * 3600 // WINDOW_SECONDS)
    vn_sim.update_config({"rate_limit": LIMIT, "rate_limit_window_seconds": WINDOW_SECONDS})
    vn_sim.log.reset()
    return vn_sim


def test_no_429_at_95_percent_of_the_allowed_rate(sim: Any) -> None:
    tenant_id = unique("vn-rate")
    company = f"{tenant_id}-company"
    sim.add_company(company, "Rate AS")
    add_tenant(tenant_id, "vismanet", "NO", {"tenant_id": company})
    workers = [VismaNetProvider(get_tenant(tenant_id)) for _ in range(2)]
    for provider in workers:  # tokens first: the token endpoint is not rate limited here
        provider.http.get_json("/v1/currency")
    time.sleep(0.2)  # their log entries written before the count starts
    sim.log.reset()
    interval = WINDOW_SECONDS / (LIMIT * 0.95)
    calls = int(WINDOWS * WINDOW_SECONDS / interval)
    start = time.monotonic() + 0.2
    answered: list[int] = []
    failures: list[BaseException] = []

    def worker(index: int, provider: VismaNetProvider) -> None:
        for n in range(index, calls, len(workers)):
            time.sleep(max(0.0, start + n * interval - time.monotonic()))
            try:
                provider.http.get_json("/v1/currency")
                answered.append(n)
            except Exception as exc:
                failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i, p)) for i, p in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert len(answered) == calls
    # The simulator logs a call as its answer leaves: the last one may still be on its way.
    wait_for(lambda: sim.log.snapshot()["by_status"].get("200", 0) >= calls, 2)
    by_status = sim.log.snapshot()["by_status"]
    assert by_status == {"200": calls}, by_status  # no 429
