"""Provider and pipeline errors in plain words: what happened, and what fixes it.

Keyed by error code first, then by category; the original message is always shown
beside the explanation, never replaced by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Explanation:
    title: str
    text: str
    fix: str
    fields: tuple[str, ...] = ()


_BY_CODE: dict[str, tuple[str, str, str]] = {
    "unknown_tenant": (
        "Unknown tenant",
        "The job names a tenant that ledgerpush does not know, so nothing was sent anywhere.",
        "Add the tenant (ledgerpush tenants add) and connect it, then retry the job.",
    ),
    "company_changed": (
        "The accounting system now answers for another company",
        "The company behind the tenant's connection is not the one the tenant is bound to, "
        "so the job was stopped before anything was written.",
        "Reconnect the tenant with its own company, or, if it really moved, move it on the "
        "tenant page (or ledgerpush tenants rebind) and reconnect.",
    ),
    "company_in_use": (
        "The company belongs to another tenant",
        "The connection points at a company another tenant is already bound to, so nothing "
        "was written.",
        "Reconnect with the tenant's own company, or allow a shared company on the tenant page.",
    ),
    "app_credentials_rejected": (
        "ledgerpush's own application credentials were refused",
        "The token endpoint refused the application (not the tenant): every tenant of this "
        "accounting system waits. The job retries by itself.",
        "Fix the client id / secret setting named in the message and restart the workers; "
        "nothing needs to be done for the job or the tenant.",
    ),
    "invalid_payload": (
        "The producer sent an invalid job",
        "The payload breaks the job contract, so it was kept here instead of being booked.",
        "Fix the fields listed below at the producer and send the job again with a new key.",
    ),
    "provider_limit": (
        "The accounting system would refuse this job",
        "A field has more decimals or characters than the tenant's accounting system takes, "
        "so the job stopped before any call to it.",
        "Fix the fields listed below at the producer and send the job with a new key; for unit "
        "prices, the tenant's mapping round_unit_prices=half_up rounds them instead (then retry).",
    ),
    "mapping_invalid": (
        "The tenant's mapping points at something that does not exist",
        "A VAT code, account or article pinned in the tenant's mapping is not in the "
        "accounting system.",
        "Correct or remove that mapping entry on the tenant page, then retry.",
    ),
    "unknown_article": (
        "Unknown article or product",
        "A line refers to an article number the accounting system does not have.",
        "Create the article remotely or fix the tenant's article mapping, then retry.",
    ),
    "no_units": (
        "The company has no units",
        "eAccounting needs a unit (such as 'pcs') for article rows and the company has none.",
        "Create a unit in eAccounting, then retry.",
    ),
    "no_vat_coding": (
        "No matching VAT coding",
        "No account coding in the accounting system matches the line's VAT rate.",
        "Create one or pin vat.<rate> in the tenant's mapping, then retry.",
    ),
    "no_fiscal_year": (
        "No open fiscal year",
        "The invoice date falls outside every fiscal year of the company.",
        "Open the fiscal year in the accounting system, then retry.",
    ),
    "no_payment_terms": (
        "No payment terms",
        "The accounting system has no terms of payment ledgerpush could use.",
        "Create terms of payment or pin payment_terms in the tenant's mapping, then retry.",
    ),
    "no_bank_account": (
        "No bank account for payments",
        "No bank account in the accounting system fits the payment's currency.",
        "Pin bank_account in the tenant's mapping, then retry.",
    ),
    "needs_review": (
        "Needs a human decision",
        "After an interruption, more than one document in the accounting system could be "
        "this job's. ledgerpush stopped rather than risk booking it twice.",
        "Check the candidates below in the accounting system. If one of them is this "
        "job's, delete the others there and replay: the lookup then adopts it. If the "
        "document is complete and correct remotely, or none should be booked, cancel.",
    ),
    "write_unconfirmed": (
        "Gave up with a write unconfirmed",
        "ledgerpush stopped retrying while the result of its last write was still unknown: "
        "the accounting system kept failing the lookup that would tell. The document or "
        "payment may exist there.",
        "Replay once the accounting system answers again: the lookup runs first and adopts "
        "what the write left, so nothing is booked twice. Cancel is refused until then.",
    ),
    "module_missing": (
        "A module is not enabled",
        "The tenant's subscription lacks a module this document needs.",
        "Enable the module in the accounting system (or change the document), then retry.",
    ),
    "variant_unsupported": (
        "The accounting system's edition cannot take this document",
        "The tenant's edition of the accounting system has no API for this kind of document.",
        "Ask the tenant to move to an edition that has it (the original error names them), "
        "then replay the job; or cancel it.",
    ),
    "refresh_token_revoked": (
        "The connection was revoked",
        "The accounting system refused the stored refresh token; usually the user changed "
        "their password or withdrew consent.",
        "Send the tenant's user the reconnect link; parked jobs resume on their own.",
    ),
    "no_refresh_token": (
        "Not connected",
        "The tenant has no stored refresh token.",
        "Connect the tenant; parked jobs resume on their own.",
    ),
    "missing_scope": (
        "Missing permission",
        "The tenant's consent does not cover this part of the API.",
        "Send the reconnect link so the user grants the missing scope.",
    ),
    "wrong_tenant_id": (
        "Visma.net refuses every call for this company",
        "Visma Connect issues tokens for the stored tenant id, but the ERP answers 401 to "
        "every call: the tenant id is probably the customer (contract) tenant id, not the "
        "company's.",
        "Find the company tenant id in Visma Admin (Company > Configuration > Tenant id) and "
        "connect the tenant with it; parked jobs resume on their own.",
    ),
    "tenant_not_approved": (
        "Visma.net app not approved for the company",
        "Visma Connect refused a token for the company tenant id: the app is not approved "
        "for it (or the approval was withdrawn), or the id is wrong.",
        "Ask the company's administrator to approve the app in Visma App Store; parked "
        "jobs resume once the tenant is connected again.",
    ),
    "period_closed": (
        "The financial period is closed",
        "The document's date falls in a period closed in the customer ledger; nothing was written.",
        "Send the document with a date in an open period, or have the period reopened and retry.",
    ),
    "no_vat_category": (
        "No VAT category fits",
        "No VAT category has this VAT rate in the customer's VAT zone, so the line could "
        "not be booked; nothing was written.",
        "Set up a fitting VAT category, or map one (vat.<rate>) on the tenant page, then retry.",
    ),
    "rate_limited": (
        "Rate limited",
        "The accounting system asked us to slow down (HTTP 429).",
        "Nothing: the job is retried after the wait the server asked for.",
    ),
    "timeout": (
        "The accounting system did not answer in time",
        "The request timed out; it is retried with backoff, looking up any half-done write first.",
        "Usually nothing. If it keeps happening, check the provider's status page.",
    ),
    "connection_error": (
        "Could not reach the accounting system",
        "The connection failed or was reset.",
        "Usually nothing: the job is retried. Check network and the provider's status.",
    ),
    "provider_unavailable": (
        "The accounting system had an error",
        "The provider answered with a server error (5xx).",
        "Usually nothing: the job is retried with backoff.",
    ),
    "provider_outage": (
        "The accounting system is down",
        "It fails for many tenants at once, so its circuit is open: jobs wait without "
        "using their retries while one request at a time checks whether it is back.",
        "Nothing: held jobs resume by themselves, oldest first, when it answers again.",
    ),
    "invoice_not_booked": (
        "Waiting for the invoice",
        "This credit note or payment refers to an invoice that is not booked yet.",
        "Nothing: it waits and retries until the invoice is booked.",
    ),
    "invoice_purged": (
        "The invoice's data was purged",
        "The credit note refers to an invoice booked so long ago that its customer and "
        "lines were removed by data retention (ledgerpush purge).",
        "Credit the invoice in the accounting system directly, then cancel this job.",
    ),
    "internal_error": (
        "Internal error in ledgerpush",
        "Something unexpected went wrong in the worker (see its logs for the job id).",
        "Retry; if it repeats, report it with the job id.",
    ),
}

_BY_CATEGORY: dict[str, tuple[str, str, str]] = {
    "rejected": (
        "The accounting system refused the document",
        "The provider answered that some values are not acceptable.",
        "Fix the fields listed below (in the tenant mapping or at the producer), then retry.",
    ),
    "invalid": _BY_CODE["invalid_payload"],
    "unsupported": _BY_CODE["module_missing"],
    "needs_reauth": (
        "The tenant must reconnect",
        "Only the tenant's user can fix the connection to the accounting system.",
        "Send the reconnect link; parked jobs resume on their own.",
    ),
    "transient": (
        "A temporary problem",
        "A timeout, server error or rate limit; ledgerpush retried it for its retry horizon "
        "(LEDGERPUSH_RETRY_HORIZON) and gave up.",
        "Retry now; if it keeps failing, check the provider's status.",
    ),
    "reference_stale": (
        "A cached reference was out of date",
        "A VAT code, account or article ledgerpush had cached no longer exists.",
        "Refresh the tenant's cached references, then retry.",
    ),
    "not_ready": _BY_CODE["invoice_not_booked"],
    "needs_review": _BY_CODE["needs_review"],
}


def _field_names(fields: Any) -> tuple[str, ...]:
    if not isinstance(fields, list):
        return ()
    names = []
    for item in fields:
        if isinstance(item, dict) and item.get("field"):
            message = item.get("message")
            names.append(f"{item['field']}: {message}" if message else str(item["field"]))
    return tuple(names)


def explain(
    category: str | None, code: str | None, message: str | None = None, fields: Any = None
) -> Explanation | None:
    if not code and not category:
        return None
    base = _BY_CODE.get(code or "")
    if base is None and code and code.startswith("module_missing"):
        base = _BY_CODE["module_missing"]
    if base is None:
        base = _BY_CATEGORY.get(category or "")
    if base is None:
        base = (
            f"Error: {code or category}",
            "ledgerpush has no plain-words text for this error yet; the original is below.",
            "Read the original message; retry once the cause is fixed.",
        )
    title, text, fix = base
    return Explanation(title, text, fix, _field_names(fields))


WAITING_FOR_REAUTH = Explanation(
    "The tenant must reconnect",
    "The job is parked: the tenant's connection to the accounting system needs its user's "
    "consent again, and only they can give it. Nothing was lost.",
    "Send the tenant's user the connect link below (or open the tenant to reconnect); "
    "the job resumes on its own once the tenant is connected.",
)


TENANT_DISABLED = Explanation(
    "The tenant is disabled",
    "The job is parked: an operator disabled its tenant, so nothing is booked for it. "
    "Nothing was lost.",
    "An admin enables the tenant (its page, or ledgerpush tenants enable); the job resumes "
    "on its own then. Reconnecting does not enable it.",
)


def explain_job(job: Any, tenant_disabled: bool = False) -> Explanation | None:
    # A parked job may still carry the error of an earlier attempt (e.g. waiting for its
    # invoice); what holds it now is the tenant's connection.
    if job.state == "waiting_for_reauth":
        return TENANT_DISABLED if tenant_disabled else WAITING_FOR_REAUTH
    return explain(job.error_category, job.error_code, job.error_message, job.error_fields)


def explain_error(error: dict[str, Any] | None) -> Explanation | None:
    """For an Attempt.error dict ({category, code, message, original})."""
    if not error:
        return None
    return explain(error.get("category"), error.get("code"), error.get("message"))
