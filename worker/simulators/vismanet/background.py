"""The background API: requests queued with `erp-api-background` (and the actions that
are always asynchronous, e.g. payment release) answer 202 `{id, stateLocation}`; a
runner thread performs them after a delay; `GET /v1/background/{id}` gives the state
(Started -> Finished/Failed) and `/content` the inner response. State is kept 24 hours."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

RETENTION_SECONDS = 24 * 3600


@dataclass
class InnerResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Job:
    id: str
    company_id: str
    method: str
    uri: str
    received: float
    due: float
    #: Performs the request; returns its response (runs under the simulator's lock).
    perform: Callable[[], InnerResponse]
    has_request_content: bool
    webhook_address: str | None = None
    status: str = "Started"
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    response: InnerResponse | None = None

    def state(self, base_url: str) -> dict[str, Any]:
        done = self.response is not None
        return {
            "id": self.id,
            "status": self.status,
            "statusCode": self.response.status if done and self.response else 0,
            "receivedUtc": _utc(self.received),
            "startedUtc": _utc(self.started),
            "finishedUtc": _utc(self.finished),
            "webhookAddress": self.webhook_address,
            "errorMessage": self.error,
            "reference": None,
            "originalUri": self.uri,
            "hasRequestContent": self.has_request_content,
            "hasResponseContent": bool(self.response and self.response.body),
            "contentLocation": f"{base_url}/v1/background/{self.id}/content" if done else None,
            "responseHeaders": dict(self.response.headers) if self.response else {},
        }


def _utc(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat() + "Z"


class BackgroundRunner:
    """Keeps jobs and runs each one once it is due, on a daemon thread."""

    def __init__(self, lock: threading.RLock, clock: Callable[[], float]) -> None:
        self.lock = lock
        self.clock = clock
        self.jobs: dict[str, Job] = {}
        self.delay_seconds = 0.2
        self.fail_rate = 0.0
        self._rng = random.Random()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def submit(self, company_id: str, method: str, uri: str, body: bytes,
               perform: Callable[[], InnerResponse], webhook: str | None = None) -> Job:  # fmt: skip
        now = self.clock()
        job = Job(
            id=str(uuid.uuid4()), company_id=company_id, method=method, uri=uri, received=now,
            due=now + self.delay_seconds, perform=perform, has_request_content=bool(body),
            webhook_address=webhook,
        )  # fmt: skip
        self.jobs[job.id] = job
        self._ensure_thread()
        return job

    def get(self, job_id: str, company_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        return job if job is not None and job.company_id == company_id else None

    def run_due(self) -> None:
        """Perform every job that is due (also called by tests with a fake clock)."""
        with self.lock:
            now = self.clock()
            for job in list(self.jobs.values()):
                if job.received + RETENTION_SECONDS < now:
                    del self.jobs[job.id]
                elif job.status == "Started" and job.due <= now:
                    self._perform(job, now)

    def _perform(self, job: Job, now: float) -> None:
        job.started = now
        if self.fail_rate and self._rng.random() < self.fail_rate:
            job.status, job.finished = "Failed", now
            job.error = "The background operation failed; it was not performed."
            job.response = InnerResponse(500, b'{"message":"Internal server error."}')
            return
        job.response = job.perform()
        job.status = "Finished" if job.response.status < 500 else "Failed"
        job.finished = self.clock()

    def _ensure_thread(self) -> None:
        # Called under the simulator's lock, which `_loop` takes to decide to end.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="vismanet-bg", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        """Runs due jobs until none is waiting (the next submit starts a new loop)."""
        while not self._stop.wait(0.05):
            self.run_due()
            with self.lock:
                if all(job.status != "Started" for job in self.jobs.values()):
                    self._thread = None
                    return

    def stop(self) -> None:
        self._stop.set()

    def reset(self) -> None:
        with self.lock:
            self.jobs.clear()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(j.status != "Started" for j in self.jobs.values()):
                    return True
            time.sleep(0.02)
        return False
