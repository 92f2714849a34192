"""The per-job lease: at most one copy of a job runs at a time, on any machine.

Celery on Redis redelivers a message whose task outlives the visibility timeout, and the
reconciler re-sends jobs that look stuck; both can produce a second copy while the first
still runs. The copy that holds `lp:lease:{job_id}` runs; any other yields and looks
again later. The lease is short (`LEDGERPUSH_LEASE_SECONDS`) so a job whose worker died
is picked up again soon, and a background thread (one per process, for every lease the
process holds) renews it while the job runs, so a slow job keeps it however long it takes. Before every remote write the pipeline asks
`ensure_held()`: a copy that lost its lease (it was paused longer than the lease, or
Redis lost the key) stops before writing instead of racing the new holder.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import LockError, LockNotOwnedError, RedisError

from worker.providers.base import Transient
from worker.transport.redis_client import (
    Finish,
    get_redis,
    nothing_queued,
    queue_script,
    script_answer,
)

log = logging.getLogger("ledgerpush.lease")


def lease_key(job_id: str) -> str:
    return f"lp:lease:{job_id}"


class LeaseLost(Transient):
    """This copy no longer holds the job's lease: stop before the next remote write."""


class _Renewer:
    """One daemon thread renews every lease of the process, each every third of its
    duration (a thread per job would cost a thread start and join per job)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[JobLease, float] = {}
        self._renewing: JobLease | None = None
        self._thread: threading.Thread | None = None
        # When the thread wakes up next by itself (None: not before it is notified).
        self._wake_at: float | None = None

    def add(self, lease: JobLease) -> None:
        with self._cond:
            due = self._due[lease] = time.monotonic() + lease.seconds / 3
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)
                self._thread.start()
            # Leases of one duration come due in the order they were added: waking the
            # thread for every job (a thread switch each) is needed only when this one is
            # due before the thread would wake anyway.
            if self._wake_at is None or due < self._wake_at:
                self._cond.notify_all()

    def remove(self, lease: JobLease, timeout: float = 5.0) -> None:
        """Stop renewing `lease`; returns once no renewal of it is in flight (or after
        `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._due.pop(lease, None)
            while self._renewing is lease and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._due:
                    self._wake_at = None
                    self._cond.wait()
                    continue
                lease, at = min(self._due.items(), key=lambda item: item[1])
                wait = at - time.monotonic()
                if wait > 0:
                    self._wake_at = at
                    self._cond.wait(wait)
                    continue
                self._due[lease] = at + lease.seconds / 3
                self._renewing = lease
            try:
                keep = lease._renew_once()
            finally:
                with self._cond:
                    self._renewing = None
                    if not keep:
                        self._due.pop(lease, None)
                    self._cond.notify_all()


_renewer = _Renewer()


class JobLease:
    """`max_hold`: renewal stops after this many seconds, so a copy stuck for good (the
    thread pool cannot kill a thread) loses the job to the reconciler instead of holding
    it forever; it stops at its next write."""

    def __init__(self, job_id: str, seconds: float, max_hold: float | None = None) -> None:
        self.job_id = job_id
        self.seconds = seconds
        self.max_hold = max_hold
        self.started = time.monotonic()
        # thread_local=False: the renewing thread must see the token the acquirer got.
        self.lock = get_redis().lock(
            lease_key(job_id), timeout=seconds, blocking=False, thread_local=False
        )
        self.lost = False
        self._renewed = False

    def acquire(self) -> bool:
        if not self.lock.acquire():
            return False
        self._taken()
        return True

    def acquire_after(self, first: Callable[[Pipeline], object]) -> tuple[bool, list[Any]]:
        """`acquire` in one round trip with the commands `first` adds to a pipeline (not a
        transaction) ahead of the lease's; returns whether the lease was taken, and
        those commands' answers (an exception for one that failed)."""
        pipe = self.lock.redis.pipeline(transaction=False)
        first(pipe)
        # What `Lock.acquire` writes (a random token, set if absent, expiring).
        token = uuid.uuid4().hex.encode()
        pipe.set(self.lock.name, token, nx=True, px=int(self.seconds * 1000))
        *answers, took = pipe.execute(raise_on_error=False)
        if isinstance(took, Exception):
            raise took
        if not took:
            return False, answers
        self.lock.local.token = token
        self._taken()
        return True, answers

    def _taken(self) -> None:
        self.started = time.monotonic()
        _renewer.add(self)
        self._renewed = True

    def held_for(self) -> float:
        return time.monotonic() - self.started

    def _renew_once(self) -> bool:
        """Extend the lease; False when it is not to be renewed any more."""
        if self.max_hold is not None and self.held_for() > self.max_hold:
            log.error(
                "job %s ran past its time limit (%.0fs); its lease is left to expire",
                self.job_id,
                self.max_hold,
            )
            self.lost = True
            return False
        try:
            self.lock.extend(self.seconds, replace_ttl=True)
        except LockNotOwnedError:
            log.warning("lease of job %s expired before it was renewed", self.job_id)
            self.lost = True
            return False
        except (LockError, RedisError) as exc:
            log.warning("could not renew the lease of job %s: %s", self.job_id, exc)
        return True

    def ensure_held(self) -> None:
        """Raise `LeaseLost` unless this copy still holds the lease (checked in Redis)."""
        try:
            held = not self.lost and self.lock.owned()
        except RedisError as exc:
            raise LeaseLost(f"cannot confirm the job's lease: {exc}", "lease_unknown") from None
        if not held:
            raise LeaseLost("another copy of this job may be running", "lease_lost")

    def release(self) -> None:
        if self._renewed:
            _renewer.remove(self)
        with contextlib.suppress(LockError, RedisError):
            self.lock.release()

    def queue_release(self, pipe: Pipeline) -> Finish:
        """`release` on a batch of the job's last commands: the same compare-and-delete
        (redis-py's Lock release script), so a lease another copy took over stays. The
        renewal stops now, before the batch is sent."""
        if self._renewed:
            _renewer.remove(self)
        token = self.lock.local.token
        if token is None:
            return nothing_queued
        self.lock.local.token = None
        script = self.lock.lua_release
        assert script is not None  # registered by every Lock's constructor
        keys, args = [self.lock.name], [token]
        queue_script(pipe, script, keys, args)
        return functools.partial(self._released, script, keys, args)

    def _released(
        self, script: Script, keys: list[Any], args: list[Any], answers: list[Any]
    ) -> None:
        with contextlib.suppress(RedisError):
            script_answer(answers[0], script, keys, args, self.lock.redis)
