"""Tenancy: a tenant's connection to its accounting system and what is known about it.

Tenants and their encrypted credentials (`tenants`), the operator's tenant actions
(`tenant_admin`), account and VAT mapping validation (`mapping`), the cached references
of a tenant's company (`refcache`), connection transitions such as needs-reauth
(`connections`), and the check that a tenant is still bound to the company it was
connected to (`binding`).
"""
