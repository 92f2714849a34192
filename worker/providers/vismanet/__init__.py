"""Visma.net ERP (Visma Net Financials).

`client` (the document plan), `payment_steps` (payments and their background release),
`references` (VAT, periods, articles and the rest, cached),
`documents` (write bodies), `transport` (rate-limit headers, Location, paging), `errors`
(both error forms), `auth` (Visma Connect client credentials), `connect`, `company`,
`payments` (balances back from the books), `spec`. Kept free of imports so that reading
the registry does not load the client.
"""
