"""Operations: what operators and the SaaS see and do around the jobs.

Operator actions on jobs (`operations`), the reconciler that finds stuck jobs
(`reconciler`), alerts and their signed webhook delivery (`alerts`, `alert_delivery`),
outbound events and webhook endpoints (`events`, `webhooks`), payment sync
(`payment_sync`), inbound provider webhooks (`inbound`), the provider outage circuit
(`circuit`) and data retention (`purge`).
"""
