"""Operations: what operators and the SaaS see and do around the jobs.

Operator actions on jobs (`operations`), the reconciler that finds stuck jobs
(`reconciler`), alerts and their signed webhook delivery (`alerts`, `alert_delivery`),
outbound events and webhook endpoints (`events`, `webhooks`), payment sync
(`payment_sync`), inbound provider webhooks (`inbound`), the provider outage circuit
(`circuit`) and data retention (`purge`).
"""

# Registers the kick that has events delivered after the ledger's commits (the ledger
# does not import upwards); every entry point imports this package.
from worker.ops import events as _events  # noqa: F401
