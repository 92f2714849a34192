"""A Visma eAccounting simulator: identity server and v2 API in one ASGI app.

Built from `reference/eaccounting` (models.json, endpoints.json) and `reference/README.md`:
the OAuth authorization-code flow with `ea:api offline_access` plus area scopes, access
tokens that expire, re-use or one-time refresh tokens with a grace period, revocation;
per-endpoint scopes from endpoints.json (403 authorization error, never empty data);
pagination (`$page`, `$pagesize`, default 50) and `$filter`/`$orderby`; 600 calls per minute
per client and endpoint with the real 429 body; request validation from models.json in
eAccounting's error format; drafts, booking, immutable invoices, payments. Faults come from
`common.FaultInjector`; `/_control` routes drive it all from tests and the CLI.

    sim = EAccountingSimulator()
    sim.add_company("acme", "NO")
    server = SimulatorServer(sim.app).start()

The package: `errors` (codes, the error format), `state` (companies, config, JSON), `auth`
(codes and tokens), `identity` (the sign-in and token routes), `api` (endpoints, calls,
paging) with `api_masterdata` and `api_invoices` (the resources), `drafts`, `invoices` and
`payments` (documents checked and built), `filtering` (`$filter`/`$orderby`), `routing`
(the `/v2` route), `control` (`/_control`), `profiles` and `seed` (reference data per
country) and `simulator` (the object and `serve`).
"""

from worker.simulators.eaccounting.simulator import (
    DEFAULT_COMPANIES,
    EAccountingSimulator,
    RateLimiter,
    serve,
)

__all__ = ["DEFAULT_COMPANIES", "EAccountingSimulator", "RateLimiter", "serve"]
