"""Customer and product endpoints."""

from __future__ import annotations

from decimal import Decimal

from starlette.routing import Route

from worker.simulators.economic.errors import Doc, ErrorCode, Issues, bad_request, not_found
from worker.simulators.economic.filtering import lookup
from worker.simulators.economic.invoices import first_decimal, require_object
from worker.simulators.economic.listing import collection
from worker.simulators.economic.routing import RouteGroup
from worker.simulators.economic.rules import (
    CUSTOMER_FILTERS,
    CUSTOMER_RULES,
    PRODUCT_FILTERS,
    PRODUCT_RULES,
    PRODUCT_SORTS,
    check,
    is_int,
    reject_nulls,
)
from worker.simulators.economic.state import (
    Call,
    Reply,
    Resolver,
    created,
    decode_id,
    linked_doc,
    sorted_values,
    strip_links,
    timestamp,
)


class MasterDataRoutes(RouteGroup):
    """Customers and products."""

    def routes(self) -> list[Route]:
        return [*self.customer_routes(), *self.product_routes()]

    # -- customers --------------------------------------------------------------------------

    def customer_routes(self) -> list[Route]:
        one = "/customers/{customerNumber:int}"
        return [
            self.route("/customers", GET=self.list_customers, POST=self.create_customer),
            self.route(
                one, GET=self.get_customer, PUT=self.put_customer, DELETE=self.delete_customer
            ),
        ]

    def list_customers(self, call: Call) -> Reply:
        sorts = {k: v for k, v in CUSTOMER_FILTERS.items() if k != "barred"}
        customers = sorted_values(call.agreement.table("customers"))
        return collection(call, customers, CUSTOMER_FILTERS, sorts)

    def _customer(self, call: Call) -> Doc:
        customer = call.agreement.table("customers").get(call.params["customerNumber"])
        if customer is None:
            raise not_found(f"Customer {call.params['customerNumber']}")
        return customer

    def get_customer(self, call: Call) -> Reply:
        return Reply(200, linked_doc(self._customer(call), call.base))

    def _valid_customer(self, call: Call, number: int | None) -> Doc:
        ag = call.agreement
        doc = require_object(call.body)
        issues = Issues(call.base)
        reject_nulls(doc, (), issues)
        check(doc, CUSTOMER_RULES, issues)
        resolver = Resolver(ag, issues)
        resolver.currency(doc.get("currency"), ("currency",))
        for key in ("customerGroup", "paymentTerms", "vatZone", "layout"):
            resolver.ref(doc, key, (key,))
        given = doc.get("customerNumber")
        if number is None and is_int(given) and given in ag.table("customers"):
            message = f"Customer number {given} is already in use."
            issues.add(("customerNumber",), ErrorCode.ALREADY_EXISTS, message, given)
        if number is not None and given is not None and given != number:
            issues.rule(("customerNumber",), "customerNumber must match the URL.", given)
        issues.raise_if_any()
        customer: Doc = strip_links({k: v for k, v in doc.items() if k not in ("balance", "self")})
        customer["currency"] = doc["currency"].upper()
        customer["balance"] = Decimal("0.00")
        customer["lastUpdated"] = timestamp(self.sim.clock())
        return customer

    def create_customer(self, call: Call) -> Reply:
        customers = call.agreement.table("customers")
        customer = self._valid_customer(call, None)
        number = customer.get("customerNumber") or max(customers, default=0) + 1
        customer["customerNumber"] = number
        customers[number] = customer
        return created(linked_doc(customer, call.base))

    def put_customer(self, call: Call) -> Reply:
        old = self._customer(call)
        customer = self._valid_customer(call, old["customerNumber"])
        customer.update(customerNumber=old["customerNumber"], balance=old["balance"])
        call.agreement.table("customers")[old["customerNumber"]] = customer
        return Reply(200, linked_doc(customer, call.base))

    def delete_customer(self, call: Call) -> Reply:
        ag = call.agreement
        number = self._customer(call)["customerNumber"]
        documents = [*ag.drafts.values(), *ag.booked.values()]
        if any(d["customer"]["customerNumber"] == number for d in documents):
            raise bad_request(f"Customer {number} has invoices and cannot be deleted.")
        del ag.table("customers")[number]
        return Reply(204, None)

    # -- products ---------------------------------------------------------------------------

    def product_routes(self) -> list[Route]:
        one = "/products/{productNumber}"
        return [
            self.route("/products", GET=self.list_products, POST=self.create_product),
            self.route(one, GET=self.get_product, PUT=self.put_product, DELETE=self.delete_product),
        ]

    def list_products(self, call: Call) -> Reply:
        products = sorted_values(call.agreement.table("products"))
        return collection(call, products, PRODUCT_FILTERS, PRODUCT_SORTS)

    def _product(self, call: Call) -> Doc:
        number = decode_id(call.params["productNumber"])
        product = call.agreement.table("products").get(number)
        if product is None:
            raise not_found(f"Product {number}")
        return product

    def get_product(self, call: Call) -> Reply:
        return Reply(200, linked_doc(self._product(call), call.base))

    def _valid_product(self, call: Call, number: str | None) -> Doc:
        ag = call.agreement
        doc = require_object(call.body)
        issues = Issues(call.base)
        reject_nulls(doc, (), issues)
        check(doc, PRODUCT_RULES, issues)
        resolver = Resolver(ag, issues)
        refs = {k: resolver.ref(doc, k, (k,)) for k in ("productGroup", "unit")}
        resolver.ref(doc, "departmentalDistribution", ("departmentalDistribution",))
        given = doc.get("productNumber")
        if number is None and isinstance(given, str) and given in ag.table("products"):
            message = f"Product number {given} is already in use."
            issues.add(("productNumber",), ErrorCode.ALREADY_EXISTS, message, given)
        if number is not None and given is not None and given != number:
            issues.rule(("productNumber",), "productNumber must match the URL.", given)
        issues.raise_if_any()
        product: Doc = strip_links({k: v for k, v in doc.items() if k not in ("invoices", "self")})
        for name in ("costPrice", "salesPrice", "recommendedPrice"):
            if name in product:
                product[name] = first_decimal(product[name])
        if refs["unit"] is not None:
            unit = ag.table("units")[refs["unit"]]
            product["unit"] = {"unitNumber": unit["unitNumber"], "name": unit["name"]}
        product["lastUpdated"] = timestamp(self.sim.clock())
        return product

    def create_product(self, call: Call) -> Reply:
        product = self._valid_product(call, None)
        call.agreement.table("products")[product["productNumber"]] = product
        return created(linked_doc(product, call.base))

    def put_product(self, call: Call) -> Reply:
        number = self._product(call)["productNumber"]
        product = self._valid_product(call, number)
        call.agreement.table("products")[number] = product
        return Reply(200, linked_doc(product, call.base))

    def delete_product(self, call: Call) -> Reply:
        ag = call.agreement
        number = self._product(call)["productNumber"]
        lines = [line for d in [*ag.drafts.values(), *ag.booked.values()] for line in d["lines"]]
        if any(lookup(line, "product.productNumber") == number for line in lines):
            raise bad_request(f"Product {number} is used on invoices and cannot be deleted.")
        del ag.table("products")[number]
        return Reply(204, None)
