"""The Celery tasks (the top layer: nothing under worker/ imports them; tasks are sent
by name, see worker/tasknames.py). Importing this package, which the worker does for its
`include`s before it builds its bootsteps, adds what only a worker process runs."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_init
from celery.worker.control import inspect_command

from worker.ops.webhooks import sync_settings_endpoint
from worker.providers import registry
from worker.tenancy import refcache
from worker.transport.app import app
from worker.transport.ingest import IngestStep


def _sync_webhook_endpoint(**_: Any) -> None:
    """LEDGERPUSH_WEBHOOK_URL receives every event from the start of the first worker
    configured with it (a delivery run would only see it later)."""
    try:
        sync_settings_endpoint()
    except Exception as exc:  # the ledger may be away: the first delivery run syncs
        logging.getLogger("ledgerpush.webhooks").warning("webhook endpoint not synced: %s", exc)


def _load_provider_clients(**_: Any) -> None:
    registry.load_clients()


worker_init.connect(_sync_webhook_endpoint, weak=False)
worker_init.connect(_load_provider_clients, weak=False)
# The plain ingest list is drained by a thread in every worker (worker/transport/ingest.py).
app.steps["worker"].add(IngestStep)


@inspect_command()
def reference_cache(state: Any) -> dict[str, int]:
    """`celery inspect reference_cache`: how many references this worker holds decoded in
    memory, and the most it may (LEDGERPUSH_REFERENCE_CACHE_MAX_ENTRIES)."""
    return refcache.local_stats()
