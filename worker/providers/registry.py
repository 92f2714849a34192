"""The accounting systems ledgerpush books into: one `ProviderSpec` each, registered here.

A spec says what the rest of ledgerpush needs to know about a provider: its name and
countries, the mapping keys an operator may pin (with help text for the CLI and the
dashboard), the settings its connect link needs, and where its parts live — the client,
the limits jobs are checked against, the connect flow, the token policy, the payment
sync and the simulator. Those parts are named as `module:attribute` and imported when
first used, like entry points: reading the registry never imports a provider, so the
lower layers (tenancy, mapping, settings checks) can read it without an import cycle.

Adding a provider: write its package under `worker/providers/<name>/` with a `spec.py`,
and add one line to `_SPECS` below (docs/architecture.md has the checklist).
"""

from __future__ import annotations

from collections.abc import Iterator

from worker.providers.eaccounting.spec import SPEC as EACCOUNTING
from worker.providers.economic.spec import SPEC as ECONOMIC
from worker.providers.spec import ProviderSpec
from worker.providers.vismanet.spec import SPEC as VISMANET

#: Every provider, in the order the CLI and the dashboard list them.
_SPECS: tuple[ProviderSpec, ...] = (EACCOUNTING, ECONOMIC, VISMANET)
_REGISTRY = {spec.name: spec for spec in _SPECS}


class UnknownProvider(ValueError):
    pass


def spec_for(name: str) -> ProviderSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise UnknownProvider(f"unknown provider {name!r}: use one of {known}") from None


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def specs() -> Iterator[ProviderSpec]:
    return iter(tuple(_REGISTRY.values()))


def check_settings() -> None:
    """Read every provider's settings now (a long-running process checks them at start);
    worker.settings.SettingsError names each variable that is wrong."""
    for spec in specs():
        _ = spec.settings


def load_clients() -> None:
    """Import every provider's client now: a worker does it at start, not inside the
    first job of each provider it meets (whose run would otherwise pay for the import)."""
    for spec in specs():
        spec.load_client()


def register(spec: ProviderSpec) -> None:
    """Add a provider from outside this package (an extension, or a test's toy provider)."""
    _REGISTRY[spec.name] = spec


def unregister(name: str) -> None:
    if name not in (s.name for s in _SPECS):
        _REGISTRY.pop(name, None)
