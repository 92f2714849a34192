"""Reading a whole collection: one loop over the pages for every provider. Each provider's
`Pager` says how a page is asked for, where its rows are and whether another page follows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from worker.providers.http import ProviderHttp

if TYPE_CHECKING:
    from worker.ledger.models import Tenant
    from worker.tenancy.refcache import TenantCache

Row = dict[str, Any]


class Pager(Protocol):
    def query(self, page: int) -> dict[str, Any]:
        """The query parameters that ask for page `page` (counted from 0)."""
        ...

    def rows(self, body: Any) -> list[Row]:
        """The rows in one page's answer."""
        ...

    def more_after(self, page: int, body: Any) -> bool:
        """Whether another page follows page `page`, whose answer was `body`."""
        ...


def collect(
    http: ProviderHttp, path: str, params: dict[str, Any] | None, pager: Pager
) -> list[Row]:
    """Every row of the collection at `path`, not just the first page's."""
    items: list[Row] = []
    page = 0
    while True:
        body = http.get_json(path, {**(params or {}), **pager.query(page)})
        items.extend(pager.rows(body))
        if not pager.more_after(page, body):
            return items
        page += 1


class PagedReferences:
    """Base of a provider's references mixin: what it needs of the provider (the tenant,
    its reference cache, the HTTP client) and whole collections read with its `pager`."""

    tenant: Tenant
    cache: TenantCache
    http: ProviderHttp
    company_checked: bool
    page_size: int

    def pager(self) -> Pager:
        """The provider's paging, for `page_size`."""
        raise NotImplementedError

    def collect(self, path: str, params: dict[str, Any] | None = None) -> list[Row]:
        """Every row of the collection at `path`, not just the first page's."""
        return collect(self.http, path, params, self.pager())
