"""Notifications an accounting system sends us (its webhooks): verified on arrival,
de-duplicated by their id, handled in the background.

A provider that sends them names an inbound module in its spec (`inbound_ref`) with
`verify(headers, body) -> Notification` (raising `Refused` on a bad signature) and
`handle(notification)`. A notification means "something changed": handlers re-read
the resource from the API and never take the payload as data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from worker.providers import registry
from worker.tasknames import HANDLE_INBOUND_TASK
from worker.transport import dispatch
from worker.transport.redis_client import get_redis

log = logging.getLogger("ledgerpush.inbound")
#: How long a notification id is remembered (the sender's retries end well before).
SEEN_SECONDS = 7 * 24 * 3600


class Refused(Exception):
    """Not a notification we accept (bad or missing signature, unknown provider)."""


@dataclass(frozen=True)
class Notification:
    provider: str
    id: str
    event: str
    #: The sender's name for the company (e.g. Visma's tenant id), to find our tenant.
    company: str
    #: The payload as sent: a hint of what changed, never the data itself.
    hint: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _inbound(provider: str) -> Any:
    try:
        spec = registry.spec_for(provider)
    except registry.UnknownProvider:
        raise Refused(f"no provider {provider!r}") from None
    if spec.inbound is None:
        raise Refused(f"{provider} sends no notifications")
    return spec.inbound


def receive(provider: str, headers: dict[str, str], body: bytes) -> bool:
    """Verify and queue one notification; False when it was seen before (a retry)."""
    notification: Notification = _inbound(provider).verify(headers, body)
    first = get_redis().set(f"lp:inbound:{provider}:{notification.id}", 1, nx=True, ex=SEEN_SECONDS)
    if not first:
        log.info("%s notification %s seen before: ignored", provider, notification.id)
        return False
    dispatch.send(HANDLE_INBOUND_TASK, (json.dumps(notification.as_dict()),))
    return True


def handle(serialized: str) -> None:
    """The background half: the provider re-reads what the notification points at."""
    notification = Notification(**json.loads(serialized))
    _inbound(notification.provider).handle(notification)
