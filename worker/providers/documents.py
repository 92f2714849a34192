"""The document a draft step writes, whether the job is an invoice or a credit note.

A credit note names the invoice it corrects; its customer and currency are the original
invoice's, and without lines of its own it credits every line of the original.
"""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

from worker.jobs import Customer, InvoiceJob, Line, parse_job
from worker.providers.base import StepContext


class Document(TypedDict):
    date: dt.date
    due: dt.date
    currency: str
    customer: Customer
    lines: list[Line]
    reference: str | None
    notes: str | None


def document_of(ctx: StepContext) -> Document:
    """The fields of the document to write, for an invoice or a credit note."""
    job = ctx.job
    if job.kind == "invoice":
        inv = job.invoice
        return {
            "date": inv.issue_date, "due": inv.due_date, "currency": inv.currency,
            "customer": inv.customer, "lines": inv.lines, "reference": inv.your_reference,
            "notes": inv.notes,
        }  # fmt: skip
    original = parse_job(ctx.related["invoice_payload"])
    assert isinstance(original, InvoiceJob) and job.kind == "credit_note"
    note = job.credit_note
    return {
        "date": note.issue_date, "due": note.issue_date, "currency": original.invoice.currency,
        "customer": original.invoice.customer, "lines": note.lines or original.invoice.lines,
        "reference": (note.reason or "")[:50] or None, "notes": note.reason,
    }  # fmt: skip
