"""Journal vouchers: entries of each type checked against the journal and the accounting year."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from worker.simulators.economic.errors import Doc, ErrorCode, Issues, Path
from worker.simulators.economic.filtering import lookup
from worker.simulators.economic.invoices import first_decimal
from worker.simulators.economic.rules import (
    ENTRY_RULES,
    ENTRY_TYPES,
    REFERENCES,
    SUPPORTED_ENTRY_TYPES,
    VOUCHER_RULES,
    check,
    is_int,
    parse_date,
    reject_nulls,
    to_decimal,
)
from worker.simulators.economic.state import Agreement, Resolver, id_from_link, money


@dataclass
class PreparedVoucher:
    journal: int
    year: str
    number: int | None
    entries: list[tuple[str, Doc]]


def prepare_voucher(
    agreement: Agreement, journal: Doc, raw: Any, prefix: Path, issues: Issues
) -> PreparedVoucher | None:
    if not isinstance(raw, dict):
        issues.add(prefix, ErrorCode.WRONG_TYPE, "A voucher must be of type object.", raw)
        return None
    reject_nulls(raw, prefix, issues)
    check(raw, VOUCHER_RULES, issues, prefix)
    year = _voucher_year(agreement, raw, prefix, issues)
    journal_no = lookup(raw, "journal.journalNumber")
    if journal_no is not None and journal_no != journal["journalNumber"]:
        issues.rule((*prefix, "journal"), "journal must be the journal posted to.", journal_no)
    entries = _voucher_entries(agreement, journal, raw, year, prefix, issues)
    number = _voucher_number(journal, raw, entries, prefix, issues)
    if year is None:
        return None
    return PreparedVoucher(journal["journalNumber"], year, number, entries)


def _voucher_year(agreement: Agreement, raw: Doc, prefix: Path, issues: Issues) -> str | None:
    obj = raw.get("accountingYear")
    if not isinstance(obj, dict):
        return None
    year = obj.get("year")
    if year is None and isinstance(obj.get("self"), str):
        year = id_from_link(obj["self"], "accounting-years", str)
    path = (*prefix, "accountingYear")
    years = agreement.table("accountingYears")
    if not isinstance(year, str) or year not in years:
        issues.not_exist(path, year, "accounting-years")
        return None
    if years[year].get("closed"):
        issues.rule(path, f"Accounting year {year} is closed.", year)
        return None
    return year


def _voucher_entries(
    agreement: Agreement, journal: Doc, raw: Doc, year: str | None, prefix: Path, issues: Issues
) -> list[tuple[str, Doc]]:
    entries = raw.get("entries")
    if not isinstance(entries, dict):
        return []
    restricted = journal["settings"].get("entryTypeRestrictedTo")
    prepared: list[tuple[str, Doc]] = []
    for key, items in entries.items():
        path = (*prefix, "entries", key)
        if not _entry_type_allowed(key, items, restricted, path, issues):
            continue
        for index, item in enumerate(items):
            entry = _prepare_entry(agreement, journal, key, item, year, (*path, index), issues)
            if entry is not None:
                prepared.append((key, entry))
    if not any(isinstance(v, list) and v for v in entries.values()):
        issues.rule((*prefix, "entries"), "A voucher must contain at least one entry.")
    return prepared


def _entry_type_allowed(
    key: str, items: Any, restricted: str | None, path: Path, issues: Issues
) -> bool:
    if key not in ENTRY_TYPES:
        issues.rule(path, f"Unknown entry type {key}; use one of {', '.join(ENTRY_TYPES)}.")
    elif not isinstance(items, list):
        issues.add(path, ErrorCode.WRONG_TYPE, f"{key} must be of type array.", items)
    elif key not in SUPPORTED_ENTRY_TYPES:
        issues.rule(path, f"{key} entries need suppliers, which this simulator does not have.")
    elif restricted and ENTRY_TYPES[key] != restricted:
        issues.rule(path, f"This journal only accepts entries of type {restricted}.")
    else:
        return True
    return False


def _prepare_entry(
    agreement: Agreement,
    journal: Doc,
    key: str,
    raw: Any,
    year: str | None,
    path: Path,
    issues: Issues,
) -> Doc | None:
    if not isinstance(raw, dict):
        issues.add(path, ErrorCode.WRONG_TYPE, "An entry must be of type object.", raw)
        return None
    check(raw, ENTRY_RULES, issues, path)
    resolver = Resolver(agreement, issues)
    refs = _entry_refs(resolver, key, raw, path)
    _entry_account_rules(agreement, key, raw, refs, path, issues)
    date = parse_date(raw.get("date"))
    if year and date and not _within_year(agreement, year, date):
        message = f"date must be within accounting year {year}."
        issues.rule((*path, "date"), message, raw.get("date"))
    currency = resolver.currency(lookup(raw, "currency.code"), (*path, "currency"))
    if issues.items:
        return None
    return _entry_document(agreement, journal, key, raw, refs, currency or agreement.base_currency)


_ENTRY_REFS = {  # property -> reference kind, per entry type
    "customerPayments": {"customer": "customer", "contraAccount": "account"},
    "manualCustomerInvoices": {"customer": "customer", "contraAccount": "account"},
    "financeVouchers": {
        "account": "account",
        "contraAccount": "account",
        "vatAccount": "vatAccount",
    },
}
_COMMON_ENTRY_REFS = {
    "contraVatAccount": "vatAccount",
    "departmentalDistribution": "departmentalDistribution",
    "project": "project",
}


def _entry_refs(resolver: Resolver, key: str, raw: Doc, path: Path) -> dict[str, Any]:
    kinds = {**_ENTRY_REFS[key], **_COMMON_ENTRY_REFS}
    return {name: resolver.ref(raw, name, (*path, name), kind) for name, kind in kinds.items()}


def _entry_account_rules(
    agreement: Agreement, key: str, raw: Doc, refs: Doc, path: Path, issues: Issues
) -> None:
    if key == "financeVouchers":
        if "account" not in raw and "contraAccount" not in raw:
            issues.missing((*path, "account"), ": either account or contraAccount is required")
    elif "customer" not in raw and "contraAccount" not in raw:
        issues.missing((*path, "customer"), ": either customer or contraAccount is required")
    if "employee" in raw:  # no employees on simulated agreements
        issues.not_exist((*path, "employee"), lookup(raw, "employee.employeeNumber"), "employees")
    for name in ("account", "contraAccount"):
        account = agreement.table("accounts").get(refs.get(name))
        if account and (account.get("blockDirectEntries") or account.get("barred")):
            message = f"Account {account['accountNumber']} does not accept entries."
            issues.rule((*path, name), message)


def _within_year(agreement: Agreement, year: str, date: dt.date) -> bool:
    doc = agreement.table("accountingYears")[year]
    return bool(doc["fromDate"] <= date.isoformat() <= doc["toDate"])


def _entry_document(
    agreement: Agreement, journal: Doc, key: str, raw: Doc, refs: Doc, currency: str
) -> Doc:
    amount = first_decimal(raw["amount"])
    rate = to_decimal(raw.get("exchangeRate")) or agreement.rate(currency)
    entry: Doc = {"entryType": ENTRY_TYPES[key], "date": raw["date"], "amount": amount}
    entry.update(currency={"code": currency}, exchangeRate=rate)
    entry["amountBaseCurrency"] = money(amount * rate / 100)
    for name, ident in refs.items():
        if ident is not None:
            kind = {**_ENTRY_REFS[key], **_COMMON_ENTRY_REFS}[name]
            entry[name] = {REFERENCES[kind][0]: ident}
    if key != "financeVouchers" and "contraAccount" not in entry:
        entry["contraAccount"] = dict(journal["settings"]["contraAccounts"]["customerPayments"])
    for name in ("text", "customerInvoice", "dueDate"):
        if name in raw:
            entry[name] = raw[name]
    for name in ("vatAmount", "contraVatAmount"):
        if name in raw:
            entry[name] = first_decimal(raw[name])
    if lookup(raw, "voucher.voucherNumber") is not None:
        entry["voucher"] = {"voucherNumber": raw["voucher"]["voucherNumber"]}
    return entry


def _voucher_number(
    journal: Doc, raw: Doc, entries: list[tuple[str, Doc]], prefix: Path, issues: Issues
) -> int | None:
    """The voucher's number: its voucherNumber, else the one its entries carry, else None
    (assigned when stored)."""
    given = raw.get("voucherNumber")
    numbers = {lookup(e, "voucher.voucherNumber") for _, e in entries} - {None}
    if given is None and len(numbers) == 1:
        given = numbers.pop()
    elif numbers - {given}:
        issues.rule((*prefix, "entries"), "All entries of a voucher must carry its number.")
    if given is None or not is_int(given):
        return None
    limits = journal["settings"]["voucherNumbers"]
    if not limits["minimumVoucherNumber"] <= given <= limits["maximumVoucherNumber"]:
        issues.rule((*prefix, "voucherNumber"), "voucherNumber is outside the journal's range.")
    return int(given)
