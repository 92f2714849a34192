"""What a provider is to the rest of ledgerpush: `ProviderSpec` (see registry.py).

A spec names its parts as `module:attribute`, imported when first used (like entry
points), so reading a spec never imports the provider's client.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from worker.settings import get_settings

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from worker.ledger.models import Tenant
    from worker.providers.base import Provider
    from worker.providers.limits import Limits


@dataclass(frozen=True)
class MappingKeys:
    """The mapping keys a provider reads: plain keys and `<prefix>.<rate>` prefixes,
    each with the help text the CLI and the dashboard show."""

    plain: dict[str, str]
    rated: dict[str, str] = field(default_factory=dict)

    def help(self) -> dict[str, str]:
        return {**self.plain, **{f"{p}.<rate>": text for p, text in self.rated.items()}}


@dataclass(frozen=True)
class OperatorConnect:
    """A provider without a consent page: an operator connects a tenant by giving one
    identifier, kept as a credential (on the dashboard, or `tenants add`). The connect
    module's `connect(tenant_id, value, actor)` checks it, binds the company and resumes
    the tenant's parked jobs."""

    #: The credential key the identifier is kept under.
    credential: str
    #: The dashboard's form field it is typed into.
    field: str
    label: str
    #: Where the operator finds it, and what it is not.
    help: str
    max_length: int = 100


@dataclass(frozen=True)
class ProviderSpec:
    """Everything ledgerpush knows about one accounting system.

    The `*_ref` fields name `module:attribute`; use the properties, which import it."""

    name: str
    label: str
    countries: tuple[str, ...]
    mapping: MappingKeys
    #: Settings (names in its `settings` part) the connect flow needs.
    app_settings: tuple[str, ...]
    #: The environment variables to fix when the provider refuses the application itself.
    app_settings_hint: str
    client_ref: str
    limits_ref: str
    connect_ref: str
    simulator_ref: str
    payment_sync_ref: str
    #: Refreshes a tenant's token ahead of expiry (beat); None: refreshed on demand only.
    proactive_refresh_ref: str | None = None
    #: Receives the provider's own webhooks (worker/ops/inbound.py); None: it sends none.
    inbound_ref: str | None = None
    simulator_banner: str = ""
    #: Its settings: a worker.settings.PartSettings of its own prefix; None: it has none.
    settings_ref: str | None = None
    #: How an operator connects a tenant when there is no consent page.
    operator_connect: OperatorConnect | None = None
    #: Its simulator in a local stack (demo, chaos, benchmarks): `create()`,
    #: `settings(sim, url)` and `connect(sim, tenant_id, country, **options)`.
    local_ref: str | None = None

    def client(self, tenant: Tenant) -> Provider:
        return self.load_client()(tenant)

    def load_client(self) -> Callable[[Tenant], Provider]:
        factory: Callable[[Tenant], Provider] = _load(self.client_ref)
        return factory

    @property
    def limits(self) -> Limits:
        limits: Limits = _load(self.limits_ref)
        return limits

    @property
    def connect(self) -> Any:
        """The connect flow module: `url(state)` (the consent page) and
        `finish_from_callback(query)` (the customer's browser back, at
        `/connect/<name>/callback`)."""
        return _load(self.connect_ref)

    def serve_simulator(self, port: int, host: str) -> None:
        _load(self.simulator_ref)(port, host=host)

    @property
    def payment_sync(self) -> Any:
        """`remaining_amounts(client, remote_ids, since) -> {remote id: Decimal}`."""
        return _load(self.payment_sync_ref)

    @property
    def inbound(self) -> Any | None:
        """`verify(headers, body) -> Notification` and `handle(notification)`."""
        return _load(self.inbound_ref) if self.inbound_ref else None

    @property
    def settings(self) -> BaseSettings | None:
        """Its settings as read now (worker.settings.Settings.part)."""
        return get_settings().part(_load(self.settings_ref)) if self.settings_ref else None

    @property
    def local(self) -> Any | None:
        return _load(self.local_ref) if self.local_ref else None

    @property
    def proactive_refresh(self) -> Any | None:
        return _load(self.proactive_refresh_ref) if self.proactive_refresh_ref else None


@functools.cache
def _load(ref: str) -> Any:
    """`module:attribute`, or a whole module when there is no attribute."""
    module, _, attribute = ref.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded
