"""`/v2` customer invoice drafts, booked customer invoices and their payments."""

from __future__ import annotations

import uuid

from worker.simulators.eaccounting import drafts, invoices, payments
from worker.simulators.eaccounting.api import ApiCall, Result, one, paginate, route
from worker.simulators.eaccounting.errors import invalid, invalid_field
from worker.simulators.eaccounting.state import MODELS, public, utc_text
from worker.simulators.modelcheck import parse_datetime

# ---------------------------------------------------------------- drafts


@route("GET", "/v2/customerinvoicedrafts")
def list_drafts(call: ApiCall) -> Result:
    return paginate(call, call.company.drafts.values(), "CustomerInvoiceDraftApi")


@route("GET", "/v2/customerinvoicedrafts/{invoiceDraftId}")
def get_draft(call: ApiCall) -> Result:
    return 200, public(
        one(call.company.drafts.values(), call.company, call.ident, "Customer invoice draft")
    )


@route("POST", "/v2/customerinvoicedrafts")
def create_draft(call: ApiCall) -> Result:
    draft = drafts.build_draft(
        call.company, call.body, call.now, str(uuid.uuid4()), utc_text(call.now)
    )
    call.company.drafts[draft["Id"]] = draft
    return 201, public(draft)


@route("PUT", "/v2/customerinvoicedrafts/{customerInvoiceDraftId}")
def update_draft(call: ApiCall) -> Result:
    existing = one(call.company.drafts.values(), call.company, call.ident, "Customer invoice draft")
    draft = drafts.build_draft(
        call.company, call.body, call.now, existing["Id"], existing["CreatedUtc"]
    )
    call.company.drafts[draft["Id"]] = draft
    return 200, public(draft)


@route("DELETE", "/v2/customerinvoicedrafts/{customerInvoiceDraftId}")
def delete_draft(call: ApiCall) -> Result:
    existing = one(call.company.drafts.values(), call.company, call.ident, "Customer invoice draft")
    del call.company.drafts[existing["Id"]]
    return 200, None


@route("POST", "/v2/customerinvoicedrafts/{customerInvoiceDraftId}/convert")
def convert_draft(call: ApiCall) -> Result:
    draft = one(call.company.drafts.values(), call.company, call.ident, "Customer invoice draft")
    options = {
        name: call.flag(name)
        for name in ("keepOriginalDraftDate", "overrideCompanyKeepOriginalDraftDate")
    }
    lowered = {k.lower(): v for k, v in options.items()}
    invoice = invoices.convert_draft(call.company, draft, call.body, lowered, call.now)
    del call.company.drafts[draft["Id"]]
    return 201, public(invoices.present_invoice(invoice, call.now))


# ---------------------------------------------------------------- invoices


@route("GET", "/v2/customerinvoices")
def list_invoices(call: ApiCall) -> Result:
    shown = [invoices.present_invoice(i, call.now) for i in call.company.invoices.values()]
    since = call.query.get("modifiedsinceutc")
    if since:
        try:
            limit = parse_datetime(since)
        except ValueError:
            raise invalid_field("modifiedSinceUtc", "Not a valid date and time.") from None
        shown = [i for i in shown if parse_datetime(i["ModifiedUtc"]) >= limit]
    return paginate(call, shown, "CustomerInvoiceApi")


@route("GET", "/v2/customerinvoices/{invoiceId}")
def get_invoice(call: ApiCall) -> Result:
    invoice = one(call.company.invoices.values(), call.company, call.ident, "Customer invoice")
    return 200, public(invoices.present_invoice(invoice, call.now))


@route("POST", "/v2/customerinvoices")
def create_invoice(call: ApiCall) -> Result:
    """Books an invoice directly; `ReferringInvoiceId` links a credit invoice to its original."""
    clean, problems = MODELS.check("CustomerInvoiceApi", call.body)
    if problems:
        raise invalid(problems)
    company = call.company
    if clean.get("CreatedFromDraftId"):
        call.params = {"customerInvoiceDraftId": clean["CreatedFromDraftId"]}
        call.body = None
        return convert_draft(call)
    draft = drafts.build_draft(
        company,
        invoices.draft_body_from_invoice(clean),
        call.now,
        str(uuid.uuid4()),
        utc_text(call.now),
    )
    if clean.get("ReferringInvoiceId"):
        invoices.link_credit(company, draft, clean["ReferringInvoiceId"])
    if clean.get("TermsOfPaymentId"):
        draft["_TermsOfPaymentId"] = one(
            company.terms, company, clean["TermsOfPaymentId"], "Terms of payment"
        )["Id"]
    invoice = invoices.book(company, draft, call.now, draft_id=None)
    invoices.after_credit(company, invoice)
    return 201, public(invoices.present_invoice(invoice, call.now))


@route("POST", "/v2/customerinvoices/{invoiceId}/payments")
def pay_invoice(call: ApiCall) -> Result:
    invoice = one(call.company.invoices.values(), call.company, call.ident, "Customer invoice")
    payment = payments.register_payment(call.company, invoice, call.body, call.now)
    return 201, public(payment)
