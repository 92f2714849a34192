"""Graceful shutdown of a worker process.

On SIGTERM Celery stops taking new messages and waits for the running tasks (the thread
pool has no time limits to cut them short). So that this wait stays short and bounded, a
running job finishes the remote write it is in — at most one HTTP timeout — records its
result, and then hands the rest back (a retry in a second) instead of starting its next
write. Another worker, or this one after a restart, continues from the ledger.
"""

from __future__ import annotations

import threading
from typing import Any

_requested = threading.Event()


def request(**_: Any) -> None:
    """Connected to Celery's `worker_shutting_down` signal (see worker/transport/app.py)."""
    _requested.set()


def requested() -> bool:
    return _requested.is_set()
