"""Draft and booked invoice endpoints."""

from __future__ import annotations

from starlette.routing import Route

from worker.simulators.economic.errors import Doc, ErrorCode, Issues, not_found
from worker.simulators.economic.invoices import (
    booked_from_draft,
    build_draft,
    check_bookable,
    require_object,
)
from worker.simulators.economic.listing import collection, filtered
from worker.simulators.economic.routing import RouteGroup
from worker.simulators.economic.rules import (
    BOOK_RULES,
    BOOKED_FILTERS,
    DRAFT_FILTERS,
    DRAFT_LINE_HIDDEN,
    check,
    is_int,
    reject_nulls,
)
from worker.simulators.economic.state import (
    Call,
    Reply,
    created,
    id_from_link,
    linked_doc,
    sorted_values,
)


class InvoiceRoutes(RouteGroup):
    """Draft invoices, booking, booked invoices."""

    def routes(self) -> list[Route]:
        return self.invoice_routes()

    def invoice_routes(self) -> list[Route]:
        drafts, booked = "/invoices/drafts", "/invoices/booked"
        one = drafts + "/{number:int}"
        return [
            self.route("/invoices", GET=self.invoices_root),
            self.route(
                drafts, GET=self.list_drafts, POST=self.create_draft, DELETE=self.delete_drafts
            ),
            self.route(one, GET=self.get_draft, PUT=self.put_draft, DELETE=self.delete_draft),
            self.route(one + "/templates", GET=self.draft_templates),
            self.route(one + "/templates/booking-instructions", GET=self.booking_instructions),
            self.route(booked, GET=self.list_booked, POST=self.book),
            self.route(booked + "/{number:int}", GET=self.get_booked, PUT=self.book),
        ]

    def invoices_root(self, call: Call) -> Reply:
        base = f"{call.base}/invoices"
        return Reply(200, {"booked": f"{base}/booked", "drafts": f"{base}/drafts", "self": base})

    def render_draft(self, call: Call, draft: Doc, with_lines: bool = True) -> Doc:
        doc = {k: v for k, v in draft.items() if k != "lines"}
        if with_lines:  # the collection's items carry no lines (invoices.md)
            doc["lines"] = [
                {k: v for k, v in line.items() if k not in DRAFT_LINE_HIDDEN}
                for line in draft["lines"]
            ]
        link = f"{call.base}/invoices/drafts/{draft['draftInvoiceNumber']}"
        doc["pdf"] = {"self": f"{link}/pdf"}
        doc["templates"] = {
            "bookingInstructions": f"{link}/templates/booking-instructions",
            "self": f"{link}/templates",
        }
        return linked_doc(doc, call.base)

    def render_booked(self, call: Call, booked: Doc, with_lines: bool = True) -> Doc:
        doc = {k: v for k, v in booked.items() if with_lines or k != "lines"}
        link = f"{call.base}/invoices/booked/{booked['bookedInvoiceNumber']}"
        doc.update(pdf={"self": f"{link}/pdf"}, sent=f"{link}/sent")
        return linked_doc(doc, call.base)

    def list_drafts(self, call: Call) -> Reply:
        def render(draft: Doc) -> Doc:
            return self.render_draft(call, draft, with_lines=False)

        return collection(call, sorted_values(call.agreement.drafts), DRAFT_FILTERS, render=render)

    def _draft(self, call: Call) -> Doc:
        draft = call.agreement.drafts.get(call.params["number"])
        if draft is None:
            raise not_found(f"Draft invoice {call.params['number']}")
        return draft

    def get_draft(self, call: Call) -> Reply:
        return Reply(200, self.render_draft(call, self._draft(call)))

    def create_draft(self, call: Call) -> Reply:
        ag = call.agreement
        draft = build_draft(ag, call.body, Issues(call.base), put=False)
        number = ag.next_draft
        ag.next_draft += 1
        ag.drafts[number] = {"draftInvoiceNumber": number, **draft}
        return created(self.render_draft(call, ag.drafts[number]))

    def put_draft(self, call: Call) -> Reply:
        number = self._draft(call)["draftInvoiceNumber"]
        draft = build_draft(call.agreement, call.body, Issues(call.base), put=True)
        call.agreement.drafts[number] = {"draftInvoiceNumber": number, **draft}
        return Reply(200, self.render_draft(call, call.agreement.drafts[number]))

    def _deleted(self, call: Call, numbers: list[int], message: str) -> Reply:
        for number in numbers:
            del call.agreement.drafts[number]
        items = [
            {"draftInvoiceNumber": n, "self": f"{call.base}/invoices/drafts/{n}"} for n in numbers
        ]
        return Reply(200, {"message": message, "deletedCount": len(numbers), "deletedItems": items})

    def delete_draft(self, call: Call) -> Reply:
        return self._deleted(call, [self._draft(call)["draftInvoiceNumber"]], "Deleted invoice.")

    def delete_drafts(self, call: Call) -> Reply:
        drafts = filtered(call, sorted_values(call.agreement.drafts), DRAFT_FILTERS)
        numbers = [d["draftInvoiceNumber"] for d in drafts]
        return self._deleted(call, numbers, f"Deleted {len(numbers)} invoices.")

    def draft_templates(self, call: Call) -> Reply:
        link = f"{call.base}/invoices/drafts/{self._draft(call)['draftInvoiceNumber']}/templates"
        return Reply(200, {"bookingInstructions": f"{link}/booking-instructions", "self": link})

    def booking_instructions(self, call: Call) -> Reply:
        number = self._draft(call)["draftInvoiceNumber"]
        link = f"{call.base}/invoices/drafts/{number}"
        body = {
            "draftInvoice": {"draftInvoiceNumber": number, "self": link},
            "self": f"{link}/templates/booking-instructions",
        }
        return Reply(200, body)

    def book(self, call: Call) -> Reply:
        """POST /invoices/booked, or PUT /invoices/booked/:bookWithNumber (invoices.md)."""
        ag = call.agreement
        payload = require_object(call.body)
        issues = Issues(call.base)
        reject_nulls(payload, (), issues)
        check(payload, BOOK_RULES, issues)
        draft_number = self._draft_to_book(call, payload, issues)
        number = self._booking_number(call, payload, issues)
        draft = ag.drafts.get(draft_number) if draft_number is not None else None
        if draft is not None:
            check_bookable(ag, draft, issues)
        issues.raise_if_any()
        assert draft is not None and number is not None
        ag.booked[number] = booked_from_draft(draft, number)
        del ag.drafts[draft["draftInvoiceNumber"]]
        return created(self.render_booked(call, ag.booked[number]))

    def _draft_to_book(self, call: Call, payload: Doc, issues: Issues) -> int | None:
        obj = payload.get("draftInvoice")
        if not isinstance(obj, dict):
            return None
        number = obj.get("draftInvoiceNumber")
        if number is None and isinstance(obj.get("self"), str):
            number = id_from_link(obj["self"], "invoices/drafts", int)
        elif number is None:
            message = (
                "No identifiers present on draftInvoice. "
                "Please include either a self link or a draftInvoiceNumber."
            )
            issues.add(("draftInvoice",), ErrorCode.NO_IDENTIFIER, message)
            return None
        if not is_int(number) or number not in call.agreement.drafts:
            issues.not_exist(("draftInvoice",), number, "invoices/drafts")
            return None
        return int(number)

    def _booking_number(self, call: Call, payload: Doc, issues: Issues) -> int | None:
        ag = call.agreement
        given = payload.get("bookWithNumber")
        number = call.params.get("number", given)
        if given is not None and number != given:
            issues.rule(("bookWithNumber",), "bookWithNumber must match the URL.", given)
        if number is None:
            return max(ag.booked, default=0) + 1
        if not is_int(number) or number < 1:
            return None
        if number in ag.booked:
            message = (
                f"Invoice {number} is already booked. Booked invoices cannot be changed; "
                "correct them with a credit note."
            )
            issues.add(("bookWithNumber",), ErrorCode.ALREADY_EXISTS, message, number)
            return None
        return int(number)

    def list_booked(self, call: Call) -> Reply:
        def render(booked: Doc) -> Doc:
            return self.render_booked(call, booked, with_lines=False)

        booked = sorted_values(call.agreement.booked)
        return collection(call, booked, BOOKED_FILTERS, render=render)

    def get_booked(self, call: Call) -> Reply:
        booked = call.agreement.booked.get(call.params["number"])
        if booked is None:
            raise not_found(f"Booked invoice {call.params['number']}")
        return Reply(200, self.render_booked(call, booked))
