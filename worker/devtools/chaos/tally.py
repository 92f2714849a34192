"""Counting a chaos run: what the simulators hold for each job against what the ledger
says of it (lost, duplicates, jobs left for review)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from worker.devtools.chaos.jobs import Plan
from worker.devtools.chaos.plan import TenantPlan
from worker.devtools.chaos.report import Report
from worker.devtools.localstack import SETTLED_STATES
from worker.jobs import INVALID_PAYLOAD

if TYPE_CHECKING:
    from worker.ledger.models import Job

SETTLED = SETTLED_STATES


def tally(
    report: Report, plan: Plan, rows: dict[tuple[str, str], Job], remote: RemoteState
) -> None:
    """Counts each job of the plan: its ledger row (by tenant and key) against its effects
    remotely."""
    for job in plan.jobs:
        tenant = plan.tenants[job["tenant_id"]]
        key = job["idempotency_key"]
        row = rows.get((tenant.tenant_id, key))
        state = row.state if row is not None else "not in the ledger"
        review = row is not None and row.error_category == "needs_review"
        report.booked += state == "booked"
        report.failed += state == "failed"
        report.needs_review += review
        effects, strays = remote.effects(tenant, job)
        if state == "booked" and not effects:
            report.lost += 1
            report.problems.append(f"{key}: booked in the ledger, absent remotely")
        elif state == "failed" and effects and not review:
            report.lost += 1
            report.problems.append(
                f"{key}: failed in the ledger ({row and row.error_code}) but booked remotely"
            )
        elif state == "failed" and row is not None and row.error_code == INVALID_PAYLOAD:
            # Every job of the plan is valid: a broken copy of it must not have failed it.
            report.lost += 1
            report.problems.append(f"{key}: failed as an invalid payload, though it is valid")
        elif state not in SETTLED:
            report.lost += 1
            report.problems.append(f"{key}: {state}, never settled")
        elif state == "waiting_for_reauth":
            # No consent is withdrawn here: expired tokens must be refreshed, not parked.
            report.lost += 1
            report.problems.append(f"{key}: parked for re-authorization ({row and row.error_code})")
        # Counted whatever the ledger says: a job that failed (or needs review) with
        # two documents remotely is a duplicate in the customer's books all the same.
        if len(effects) > 1 or strays:
            report.duplicates += max(len(effects) - 1, 0) + strays
            report.problems.append(
                f"{key}: {len(effects)} documents and {strays} stray drafts"
                f" ({state}, {row and row.error_code})"
            )
        amount = Decimal(job["payment"]["amount"]) if job["kind"] == "payment" else None
        if amount is not None and len(effects) == 1 and effects[0] != amount:
            report.lost += 1
            report.problems.append(f"{key}: applied {effects[0]}, not {amount}")


class RemoteState:
    """Documents and payments per job key, as the simulators hold them."""

    def __init__(
        self, ea: dict[str, Any], ec: dict[str, Any], vn: dict[str, Any] | None = None
    ) -> None:
        self.ea, self.ec, self.vn = ea, ec, vn or {}

    def effects(self, tenant: TenantPlan, job: dict[str, Any]) -> tuple[list[Any], int]:
        """What exists remotely for this job (documents, or applied payment amounts), and
        how many drafts are left beside it."""
        key, kind = job["idempotency_key"], job["kind"]
        if tenant.provider == "vismanet":
            return self._vismanet_effects(tenant, key, kind)
        if tenant.provider == "eaccounting":
            company = self.ea[tenant.tenant_id]
            if kind == "payment":
                return [
                    Decimal(str(p["PaymentAmount"]))
                    for invoice in company["invoices"]
                    for p in invoice["Payments"]
                    if p.get("Reference") == key
                ], 0
            documents = [
                i
                for i in company["invoices"]
                if i.get("YourReference") == key
                and bool(i.get("IsCreditInvoice")) == (kind == "credit_note")
            ]
            drafts = sum(1 for d in company["drafts"] if d.get("YourReference") == key)
            return documents, drafts
        agreement = self.ec[f"grant-{tenant.tenant_id}"]
        if kind == "payment":
            return [
                -Decimal(str(entry["amount"]))
                for voucher in agreement["vouchers"]
                for entry in voucher["entries"].get("customerPayments", [])
                if str(entry.get("text", "")).endswith(f": {key}")
            ], 0
        documents = [
            b for b in agreement["booked"] if (b.get("references") or {}).get("other") == key
        ]
        drafts = sum(
            1 for d in agreement["drafts"] if (d.get("references") or {}).get("other") == key
        )
        return documents, drafts

    def _vismanet_effects(self, tenant: TenantPlan, key: str, kind: str) -> tuple[list[Any], int]:
        """Released documents (or released payments' amounts) whose externalReference
        (paymentRef) is the job key, and how many unreleased ones are left beside them."""
        from worker.simulators.vismanet.local import company_of

        company = self.vn[company_of(tenant.tenant_id)]
        if kind == "payment":
            payments = [p for p in company["payments"] if p.get("paymentRef") == key]
            released = [p for p in payments if p["status"] not in ("Hold", "Balanced")]
            amounts = [Decimal(str(p["paymentAmount"])) for p in released]
            return amounts, len(payments) - len(released)
        wanted = "CreditNote" if kind == "credit_note" else "Invoice"
        documents = [
            d
            for d in company["documents"]
            if d.get("externalReference") == key and d["documentType"] == wanted
        ]
        released = [d for d in documents if d["status"] in ("Open", "Closed")]
        return released, len(documents) - len(released)


def vismanet_state(sim: Any) -> dict[str, Any]:
    """Every Visma.net company's documents and payments in their read-model shape (the
    simulator's `GET /_control/state`)."""
    if sim is None:
        return {}
    from worker.simulators.vismanet.views import document, payment

    with sim.lock:
        return {
            tid: {
                "documents": [document(c, d) for d in c.documents.values()],
                "payments": [payment(c, p) for p in c.payments.values()],
            }
            for tid, c in sim.companies.items()
        }
