"""Visma e-conomic REST API simulator (https://restapi.e-conomic.com), built from e-conomic's
own documentation in shared/reference/economic/*.md.

Auth by `X-AppSecretToken` + `X-AgreementGrantToken` (401 when missing, wrong or revoked);
writes must be `Content-Type: application/json` (415 otherwise); no PATCH (405); PUT takes
the whole document; 400 answers in the annotated error format; collections paginate with
`skippages`/`pagesize` (20 by default, at most 1000) and take `filter=`/`sort=`; booked
invoices are immutable; endpoints of a module the agreement lacks answer 403; every
agreement has a fair-use budget of calls per day (429 beyond it).

Error codes E04500, E04730, E04740 and E06000 are the ones the docs show; the others are
this simulator's own (the docs do not list them) and are named in `ErrorCode`.

The package: `errors` (codes, the annotated format), `rules` (the docs' property tables),
`state` (agreements, calls, rendering, references), `invoices` and `vouchers` (documents
checked and built), `listing` (paging, filters), `routing`, `api*` and `control` (routes),
`simulator` (the object and `serve`), `seed` (reference data per country) and `filtering`
(the `filter=` language).
"""

from worker.simulators.economic.errors import ApiError, ErrorCode
from worker.simulators.economic.rules import DRAFT_POST_REQUIRED
from worker.simulators.economic.simulator import DEFAULT_AGREEMENTS, EconomicSimulator, serve

__all__ = [
    "DEFAULT_AGREEMENTS",
    "DRAFT_POST_REQUIRED",
    "ApiError",
    "EconomicSimulator",
    "ErrorCode",
    "serve",
]
