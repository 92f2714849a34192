"""Which e-conomic product a line is booked with: VAT is not a code on the line, e-conomic
takes it from the line's product → its product group → the group's sales account for the
recipient's VAT zone → that account's VAT code → its rate. So every line gets a product
that yields the line's rate in the recipient's zone (or the one the tenant's mapping pins,
or the line's own `article_number`); a line whose rate no product can give is refused,
naming the mapping that fixes it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from worker.jobs import Line
from worker.providers.base import Rejected
from worker.providers.economic.references import References
from worker.tenancy.mapping import rate_key


def _natural(number: str) -> tuple[int, int | str]:
    return (0, int(number)) if number.isdigit() else (1, number)


class Products(References):
    """The product choice, on the cached catalogue of products and product groups."""

    def _catalogue(self) -> dict[str, Any]:
        """Products, and for each product group the sales account and VAT code per zone."""
        products = [
            {
                "number": str(p["productNumber"]),
                "group": str((p.get("productGroup") or {}).get("productGroupNumber")),
                "barred": bool(p.get("barred")),
            }
            for p in self.collect("/products")
        ]
        groups: dict[str, dict[str, dict[str, Any]]] = {}
        for group in self.collect("/product-groups"):
            number = group["productGroupNumber"]
            zones: dict[str, dict[str, Any]] = {}
            for row in self.collect(f"/product-groups/{number}/sales-accounts"):
                account = row.get("salesAccount") or {}
                zones[str(row["vatZone"]["vatZoneNumber"])] = {
                    "account": account.get("accountNumber"),
                    "vat": (account.get("vatAccount") or {}).get("vatCode"),
                }
            groups[str(number)] = zones
        rates = {
            str(v["vatCode"]): str(v.get("ratePercentage", 0))
            for v in self.collect("/vat-accounts")
        }
        return {"products": products, "groups": groups, "rates": rates}

    def _vat_of(self, catalogue: dict[str, Any], product: dict[str, Any], zone: int) -> Decimal:
        coding = catalogue["groups"].get(product["group"], {}).get(str(zone)) or {}
        rate = catalogue["rates"].get(str(coding.get("vat")), "0") if coding.get("vat") else "0"
        return Decimal(rate).normalize()

    def product_for(self, index: int, line: Line, zone: dict[str, Any], prefix: str) -> str:
        rate = line.vat_rate.normalize()
        key = rate_key("article", line.vat_rate)
        wanted = line.account
        if wanted is not None:
            if line.article_number:
                raise Rejected(
                    f"line {index} names both a product and an account; the product's group "
                    "decides the account",
                    "account_with_article",
                    fields=[
                        {
                            "field": f"{prefix}.lines.{index}.account",
                            "message": "leave account out when article_number is set",
                        }
                    ],
                )
            choice = f"product:{zone['number']}:{rate:f}:account:{wanted}"
            return str(
                self.cache.get(choice, lambda: self._search(rate, zone, (index, wanted, prefix)))
            )
        pinned = line.article_number or self._pinned(key)
        if not pinned:
            narrowed = [self._pinned(k) for k in (rate_key("vat", rate), rate_key("account", rate))]
            choice = f"product:{zone['number']}:{rate:f}:{narrowed}:{self._pinned('product')}"
            return str(self.cache.get(choice, lambda: self._search(rate, zone)))
        number = str(pinned)
        field = (
            f"{prefix}.lines.{index}.article_number" if line.article_number else f"mapping.{key}"
        )
        catalogue = self._fresh(
            "catalogue",
            self._catalogue,
            lambda c: any(p["number"] == number for p in c["products"]),
        )
        product = next((p for p in catalogue["products"] if p["number"] == number), None)
        if product is None and not line.article_number:
            raise self._mapping_invalid(key, number, "product")
        if product is None or product["barred"]:
            state = "does not exist" if product is None else "is barred"
            raise Rejected(
                f"product {number} {state} in e-conomic",
                "unknown_product",
                fields=[{"field": field, "message": f"product {number} {state}"}],
            )
        actual = self._vat_of(catalogue, product, zone["number"])
        if actual != rate:
            raise Rejected(
                f"line {index}: product {number} gives {actual:f}% VAT to {zone['kind']} customers "
                f"in e-conomic, but the line says {rate:f}%",
                "vat_mismatch",
                fields=[
                    {
                        "field": f"{prefix}.lines.{index}.vat_rate",
                        "message": f"{actual:f}% in e-conomic",
                    }
                ],
            )
        return number

    def _search(
        self, rate: Decimal, zone: dict[str, Any], line_account: tuple[int, int, str] | None = None
    ) -> str:
        """A product giving `rate` in the zone (the default product first, then the lowest
        number); `vat.<rate>` / `account.<rate>` in the mapping narrow the VAT code / account.
        `line_account` (index, account, prefix): a line's own sales account, which the
        product's group must book on in this zone (instead of `account.<rate>`)."""
        catalogue: dict[str, Any] = self.cache.get("catalogue", self._catalogue)
        vat_code = self._pinned(rate_key("vat", rate))
        account = self._pinned(rate_key("account", rate))
        if line_account is not None:
            account = line_account[1]
        zone_key = str(zone["number"])

        def fits(product: dict[str, Any]) -> bool:
            coding = catalogue["groups"].get(product["group"], {}).get(zone_key) or {}
            return (
                not product["barred"]
                and self._vat_of(catalogue, product, zone["number"]) == rate
                and (vat_code is None or str(coding.get("vat")) == str(vat_code))
                and (account is None or str(coding.get("account")) == str(account))
            )

        default = str(self._pinned("product") or "")
        candidates: list[str] = sorted(
            (str(p["number"]) for p in catalogue["products"] if fits(p)),
            key=lambda n: (n != default, _natural(n)),
        )
        if not candidates and line_account is not None:
            index, wanted, prefix = line_account
            raise Rejected(
                f"line {index}: no e-conomic product gives {rate:f}% VAT to {zone['kind']} "
                f"customers and books on account {wanted}",
                "no_product_for_account",
                fields=[
                    {
                        "field": f"{prefix}.lines.{index}.account",
                        "message": f"no product whose group books {rate:f}% VAT sales to "
                        f"{zone['kind']} customers on {wanted}; set one up in e-conomic "
                        "or leave account out",
                    }
                ],
            )
        if not candidates:
            raise Rejected(
                f"no e-conomic product gives {rate:f}% VAT to {zone['kind']} customers; map one "
                f"with `ledgerpush tenants map {self.tenant.id} article.{rate:f}=<product number>`",
                "no_product_for_vat_rate",
                fields=[
                    {
                        "field": f"mapping.article.{rate:f}",
                        "message": f"no product with {rate:f}% VAT",
                    }
                ],
            )
        return candidates[0]
