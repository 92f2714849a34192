"""Visma eAccounting (Norway, Netherlands; Spiris in Sweden, ePasseli in Finland).

`client` (references and the step plan), `auth` (Visma Connect OAuth), `connect` (the
consent flow), `company` (which company credentials are for), `payments` (payment
status back from the books), `spec` (what the registry knows). Kept free of imports so
that reading the registry does not load the client.
"""
