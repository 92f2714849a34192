"""Visma e-conomic (Denmark, Norway, Sweden).

`client` (references and the step plan), `errors` (answers to the error taxonomy),
`auth` (the two-token auth), `connect` (the installation flow), `company` (which
agreement a grant is for), `payments` (payment status back from the books), `spec`
(what the registry knows). Kept free of imports so that reading the registry does not
load the client.
"""
