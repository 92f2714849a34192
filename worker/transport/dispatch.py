"""Sending a Celery task by name: the one way the runtime asks for a task to run.

Routing (which queue) is the app's, by task name (worker/transport/app.py); the task modules
under `tasks/` are the top layer and never imported from here.
"""

from __future__ import annotations

from typing import Any

from worker.transport.app import app


def send(name: str, args: tuple[Any, ...] = (), countdown: float | None = None) -> None:
    app.send_task(name, args=args, countdown=countdown)
