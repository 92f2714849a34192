"""Mapping keys are checked against what the tenant's provider reads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, connect_ea_tenant, connect_ec_tenant
from worker.tenancy.mapping import MappingError, validate
from worker.tenancy.tenants import get_tenant, update_mapping


@pytest.mark.parametrize("key", ["layout", "journal", "account.25", "product", "customer_group"])
def test_eaccounting_refuses_keys_it_does_not_read(key: str) -> None:
    with pytest.raises(MappingError) as caught:
        validate({key: "3"}, "eaccounting")
    message = str(caught.value)
    assert repr(key) in message and "eaccounting" in message
    assert (
        "bank_account, payment_terms, round_unit_prices, or vat.<rate>, article.<rate>" in message
    )
    assert caught.value.key == key


def test_economic_refuses_bank_account() -> None:
    with pytest.raises(MappingError, match="'bank_account' is not used by economic"):
        validate({"bank_account": "1"}, "economic")


def test_each_provider_accepts_what_it_reads() -> None:
    assert validate({"vat.25.0": "x", "bank_account": "b"}, "eaccounting") == {
        "vat.25": "x",
        "bank_account": "b",
    }
    assert validate({"account.25": 3000, "layout": 19, "journal": 1}, "economic")
    assert validate({"layout": 19, "bank_account": "b"}) == {"layout": 19, "bank_account": "b"}


def test_unknown_key_names_what_the_provider_accepts() -> None:
    with pytest.raises(MappingError, match=r"unknown mapping key 'vat25'.*bank_account"):
        validate({"vat25": "1"}, "eaccounting")


def test_update_mapping_checks_the_tenants_provider() -> None:
    ea, ec = connect_ea_tenant("NO"), connect_ec_tenant("DK")
    with pytest.raises(MappingError, match="'layout' is not used by eaccounting"):
        update_mapping(ea, {"layout": "3"})
    update_mapping(ec, {"layout": "3"})
    assert get_tenant(ec).mapping == {"layout": "3"}
    update_mapping(ea, {"layout": None})  # removing a stray key is always allowed
    assert get_tenant(ea).mapping == {}


def test_cli_map_exits_nonzero_naming_the_key() -> None:
    tenant = connect_ea_tenant("NO")
    result = subprocess.run(
        [sys.executable, "-m", "worker", "tenants", "map", tenant, "layout=3", "journal=2",
         "account.25=3000"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    output = " ".join((result.stdout + result.stderr).split())
    assert "'layout' is not used by eaccounting" in output
    assert get_tenant(tenant).mapping == {}


def test_round_unit_prices_takes_only_half_up() -> None:
    assert validate({"round_unit_prices": "half_up"}, "economic") == {
        "round_unit_prices": "half_up"
    }
    with pytest.raises(MappingError, match="'round_unit_prices': value must be one of half_up"):
        validate({"round_unit_prices": "up"}, "eaccounting")
