"""Journal, voucher and entry endpoints."""

from __future__ import annotations

from starlette.routing import Route

from worker.simulators.economic.errors import Doc, Issues, bad_request, not_found
from worker.simulators.economic.listing import collection
from worker.simulators.economic.routing import RouteGroup
from worker.simulators.economic.rules import ENTRY_FILTERS, ENTRY_TYPES, JOURNAL_FILTERS, NO_FILTERS
from worker.simulators.economic.state import (
    Agreement,
    Call,
    Reply,
    created,
    linked_doc,
    sorted_values,
)
from worker.simulators.economic.vouchers import PreparedVoucher, prepare_voucher


class JournalRoutes(RouteGroup):
    """Journals, their vouchers and entries."""

    def routes(self) -> list[Route]:
        return self.journal_routes()

    def journal_routes(self) -> list[Route]:
        one = "/journals/{journalNumber:int}"
        return [
            self.route("/journals", GET=self.list_journals),
            self.route(one, GET=self.get_journal),
            self.route(one + "/vouchers", GET=self.list_vouchers, POST=self.post_vouchers),
            self.route(one + "/vouchers/{voucher}", GET=self.get_voucher),
            self.route(one + "/entries", GET=self.list_entries),
            self.route(one + "/entries/{entry:int}", DELETE=self.delete_entry),
            self.route(one + "/templates", GET=self.journal_templates),
        ]

    def _journal(self, call: Call) -> Doc:
        journal = call.agreement.table("journals").get(call.params["journalNumber"])
        if journal is None:
            raise not_found(f"Journal {call.params['journalNumber']}")
        return journal

    def render_journal(self, call: Call, journal: Doc) -> Doc:
        link = f"{call.base}/journals/{journal['journalNumber']}"
        doc = dict(journal)
        doc.update(entries=f"{link}/entries", vouchers=f"{link}/vouchers")
        doc["templates"] = {"self": f"{link}/templates"}
        return linked_doc(doc, call.base)

    def list_journals(self, call: Call) -> Reply:
        journals = sorted_values(call.agreement.table("journals"))
        return collection(
            call, journals, JOURNAL_FILTERS, render=lambda j: self.render_journal(call, j)
        )

    def get_journal(self, call: Call) -> Reply:
        return Reply(200, self.render_journal(call, self._journal(call)))

    def journal_templates(self, call: Call) -> Reply:
        link = f"{call.base}/journals/{self._journal(call)['journalNumber']}/templates"
        return Reply(200, {"self": link})

    def render_voucher(self, call: Call, voucher: Doc) -> Doc:
        journal = voucher["journal"]["journalNumber"]
        year, number = voucher["accountingYear"]["year"], voucher["voucherNumber"]
        link = f"{call.base}/journals/{journal}/vouchers/{year}-{number}"
        doc = linked_doc(voucher, call.base)
        doc["self"] = link
        for entries in doc["entries"].values():
            for entry in entries:
                entry_no = entry["journalEntryNumber"]
                entry["self"] = f"{call.base}/journals/{journal}/entries/{entry_no}"
                entry["voucher"]["self"] = link
        return doc

    def _journal_vouchers(self, call: Call) -> list[Doc]:
        journal = self._journal(call)["journalNumber"]
        vouchers = call.agreement.vouchers
        return [vouchers[key] for key in sorted(vouchers) if key[0] == journal]

    def list_vouchers(self, call: Call) -> Reply:
        vouchers = self._journal_vouchers(call)
        return collection(call, vouchers, NO_FILTERS, render=lambda v: self.render_voucher(call, v))

    def get_voucher(self, call: Call) -> Reply:
        journal = self._journal(call)["journalNumber"]
        year, _, number = str(call.params["voucher"]).rpartition("-")
        key = (journal, year, int(number) if number.isdigit() else -1)
        voucher = call.agreement.vouchers.get(key)
        if voucher is None:
            raise not_found(f"Voucher {call.params['voucher']}")
        return Reply(200, self.render_voucher(call, voucher))

    def post_vouchers(self, call: Call) -> Reply:
        """One voucher object in, one out; an array (bulk) in, an array out."""
        ag = call.agreement
        journal = self._journal(call)
        many = isinstance(call.body, list)
        raws = call.body if many else [call.body]
        issues = Issues(call.base)
        prepared = [
            prepare_voucher(ag, journal, raw, (i,) if many else (), issues)
            for i, raw in enumerate(raws)
        ]
        if not raws:
            raise bad_request("Post at least one voucher.")
        issues.raise_if_any()
        stored = [self._store_voucher(ag, p) for p in prepared if p is not None]
        rendered = [self.render_voucher(call, voucher) for voucher in stored]
        return Reply(201, rendered) if many else created(rendered[0])

    def _store_voucher(self, ag: Agreement, prepared: PreparedVoucher) -> Doc:
        number = prepared.number or self._next_voucher_number(ag, prepared)
        empty = {
            "accountingYear": {"year": prepared.year},
            "journal": {"journalNumber": prepared.journal},
            "voucherNumber": number,
            "entries": {},
        }
        # Entries posted with an existing voucher number join that voucher, like lines with
        # the same voucher number in a daybook.
        voucher = ag.vouchers.setdefault((prepared.journal, prepared.year, number), empty)
        for type_key, entry in prepared.entries:
            stored = {**entry, "journalEntryNumber": ag.next_entry}
            ag.next_entry += 1
            stored["journal"] = {"journalNumber": prepared.journal}
            stored["voucher"] = {"voucherNumber": number, "accountingYear": {"year": prepared.year}}
            voucher["entries"].setdefault(type_key, []).append(stored)
        return voucher

    def _next_voucher_number(self, ag: Agreement, prepared: PreparedVoucher) -> int:
        journal = ag.table("journals")[prepared.journal]
        used = [k[2] for k in ag.vouchers if k[:2] == (prepared.journal, prepared.year)]
        minimum = int(journal["settings"]["voucherNumbers"]["minimumVoucherNumber"])
        return max([minimum - 1, *used]) + 1

    def _entries(self, call: Call) -> list[Doc]:
        rows = []
        for voucher in self._journal_vouchers(call):
            for entries in self.render_voucher(call, voucher)["entries"].values():
                for entry in entries:
                    entry["amountDefaultCurrency"] = entry["amountBaseCurrency"]
                    rows.append(entry)
        order = list(ENTRY_TYPES.values())
        return sorted(rows, key=lambda e: (order.index(e["entryType"]), e["journalEntryNumber"]))

    def list_entries(self, call: Call) -> Reply:
        return collection(call, self._entries(call), ENTRY_FILTERS, render=lambda e: e)

    def delete_entry(self, call: Call) -> Reply:
        journal = self._journal(call)["journalNumber"]
        vouchers = call.agreement.vouchers
        for key in [k for k in vouchers if k[0] == journal]:
            entries = vouchers[key]["entries"]
            for type_key, items in entries.items():
                kept = [e for e in items if e["journalEntryNumber"] != call.params["entry"]]
                if len(kept) < len(items):
                    entries[type_key] = kept
                    if not any(entries.values()):
                        del vouchers[key]
                    return Reply(204, None)
        raise not_found(f"Entry {call.params['entry']}")
