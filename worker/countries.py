"""Country facts shared by the providers and the simulators (a leaf: it imports nothing of
ours)."""

from __future__ import annotations

#: The member states of the European Union, by ISO 3166-1 alpha-2 code.
EU_COUNTRIES = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip
