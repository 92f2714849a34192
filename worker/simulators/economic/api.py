"""The e-conomic REST endpoints: root, /self, reference data and add-on modules, and the
other endpoint groups composed into one route list."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from starlette.routing import Route

from worker.simulators.economic import seed
from worker.simulators.economic.api_invoices import InvoiceRoutes
from worker.simulators.economic.api_journals import JournalRoutes
from worker.simulators.economic.api_masterdata import MasterDataRoutes
from worker.simulators.economic.errors import Doc, not_found
from worker.simulators.economic.invoices import month_end
from worker.simulators.economic.listing import collection
from worker.simulators.economic.routing import RouteGroup
from worker.simulators.economic.rules import (
    ACCOUNT_FILTERS,
    CUSTOMER_GROUP_FILTERS,
    DISTRIBUTION_FILTERS,
    NO_FILTERS,
    PERIOD_FILTERS,
    PROJECT_FILTERS,
    YEAR_FILTERS,
)
from worker.simulators.economic.state import Call, Handler, Reply, linked_doc, sorted_values


class ApiRoutes(RouteGroup):
    """The e-conomic REST endpoints. Handlers run under the simulator's lock."""

    def routes(self) -> list[Route]:
        return [
            self.route("/", GET=self.root),
            self.route("/self", GET=self.get_self),
            *MasterDataRoutes(self.sim).routes(),
            *self.reference_routes(),
            *InvoiceRoutes(self.sim).routes(),
            *JournalRoutes(self.sim).routes(),
            *self.module_routes(),
        ]

    # -- root, /self and reference data -----------------------------------------------------

    def root(self, call: Call) -> Reply:
        names = (
            "accounting-years", "accounts", "currencies", "customer-groups", "customers",
            "invoices", "journals", "layouts", "payment-terms", "product-groups", "products",
            "self", "units", "vat-accounts", "vat-zones",
        )  # fmt: skip
        links = {name: f"{call.base}/{name}" for name in names}
        return Reply(200, {**links, "self": f"{call.base}/"})

    def get_self(self, call: Call) -> Reply:
        ag = call.agreement
        country = seed.COUNTRIES[ag.country]
        type_number, type_name = country.agreement_type
        language_number, language_name, culture = country.language
        company = ag.ref["company"]
        language = {"languageNumber": language_number, "name": language_name, "culture": culture}
        body: Doc = {
            "agreementNumber": ag.number,
            "agreementType": {"agreementTypeNumber": type_number, "name": type_name},
            "application": {
                "appNumber": 1,
                "appPublicToken": self.sim.app_public_token,
                "name": "ledgerpush",
                "created": "2025-01-01",
                "requiredRoles": [{"roleNumber": 1, "name": "SuperUser"}],
            },
            "bankInformation": {"bankAccountNumber": "1234567890", "bankName": "Simulated Bank"},
            "canSendElectronicInvoice": ag.country == "DK",
            "company": company,
            "companyAffiliation": "E-conomic",
            "modules": seed.modules_doc(ag.modules),
            "settings": {"baseCurrency": ag.base_currency, "internationalLedger": "true"},
            "signupDate": "2025-01-01",
            "user": {
                "agreementNumber": ag.number,
                "email": company["email"],
                "language": language,
                "loginId": "ADMIN",
                "name": company["attention"],
            },
            "userName": company["attention"],
            "self": f"{call.base}/self",
        }
        return Reply(200, linked_doc(body, call.base))

    def table_routes(
        self, path: str, table: str, filters: Mapping[str, str], id_spec: str = "{id:int}"
    ) -> list[Route]:
        def listing(call: Call) -> Reply:
            return collection(call, sorted_values(call.agreement.table(table)), filters)

        def single(call: Call) -> Reply:
            doc = call.agreement.table(table).get(call.params["id"])
            if doc is None:
                raise not_found(f"{path[1:]} {call.params['id']}")
            return Reply(200, linked_doc(doc, call.base))

        return [self.route(path, GET=listing), self.route(f"{path}/{id_spec}", GET=single)]

    def reference_routes(self) -> list[Route]:
        years = "/accounting-years/{year}/periods"
        groups = "/product-groups"
        return [
            *self.table_routes("/layouts", "layouts", NO_FILTERS),
            *self.table_routes("/payment-terms", "paymentTerms", NO_FILTERS),
            *self.table_routes("/vat-zones", "vatZones", NO_FILTERS),
            *self.table_routes("/vat-accounts", "vatAccounts", NO_FILTERS, "{id}"),
            *self.table_routes("/vat-types", "vatTypes", NO_FILTERS),
            *self.table_routes("/accounts", "accounts", ACCOUNT_FILTERS),
            *self.table_routes("/units", "units", NO_FILTERS),
            *self.table_routes("/currencies", "currencies", NO_FILTERS, "{id}"),
            *self.table_routes("/customer-groups", "customerGroups", CUSTOMER_GROUP_FILTERS),
            *self.table_routes("/accounting-years", "accountingYears", YEAR_FILTERS, "{id}"),
            self.route(years, GET=self.periods),
            self.route(years + "/{period:int}", GET=self.period),
            self.route(groups, GET=self.product_groups),
            self.route(groups + "/{id:int}", GET=self.product_group),
            self.route(groups + "/{id:int}/sales-accounts", GET=self.sales_accounts),
        ]

    def _periods(self, call: Call) -> list[Doc]:
        year = call.agreement.table("accountingYears").get(call.params["year"])
        if year is None:
            raise not_found(f"Accounting year {call.params['year']}")
        first = dt.date.fromisoformat(year["fromDate"])
        periods = []
        for number in range(1, 13):
            last = month_end(first)
            link = f"{call.base}/accounting-years/{year['year']}/periods/{number}"
            periods.append(
                {
                    "periodNumber": number,
                    "fromDate": first.isoformat(),
                    "toDate": last.isoformat(),
                    "accountingYear": {"year": year["year"]},
                    "self": link,
                }
            )
            first = last + dt.timedelta(days=1)
        return periods

    def periods(self, call: Call) -> Reply:
        return collection(call, self._periods(call), PERIOD_FILTERS)

    def period(self, call: Call) -> Reply:
        for period in self._periods(call):
            if period["periodNumber"] == call.params["period"]:
                return Reply(200, linked_doc(period, call.base))
        raise not_found(f"Period {call.params['period']}")

    def _group(self, call: Call) -> Doc:
        group = call.agreement.table("productGroups").get(call.params["id"])
        if group is None:
            raise not_found(f"Product group {call.params['id']}")
        return group

    def _render_group(self, call: Call, group: Doc) -> Doc:
        doc = {k: v for k, v in group.items() if k != "salesAccounts"}
        link = f"{call.base}/product-groups/{group['productGroupNumber']}"
        doc.update(salesAccounts=f"{link}/sales-accounts", products=f"{link}/products")
        return linked_doc(doc, call.base)

    def product_groups(self, call: Call) -> Reply:
        groups = sorted_values(call.agreement.table("productGroups"))
        return collection(call, groups, NO_FILTERS, render=lambda g: self._render_group(call, g))

    def product_group(self, call: Call) -> Reply:
        return Reply(200, self._render_group(call, self._group(call)))

    def sales_accounts(self, call: Call) -> Reply:
        ag = call.agreement
        rows = [
            {"salesAccount": ag.table("accounts")[account], "vatZone": ag.table("vatZones")[zone]}
            for zone, account in sorted(self._group(call)["salesAccounts"].items())
        ]
        filters = {f"salesAccount.{k}": v for k, v in ACCOUNT_FILTERS.items()}
        return collection(call, rows, filters)

    # -- endpoints of add-on modules --------------------------------------------------------

    def module_routes(self) -> list[Route]:
        dd = "/departmental-distributions"
        table = "departmentalDistributions"
        return [
            self.route("/projects", "Projects", GET=self._listing("projects", PROJECT_FILTERS)),
            self.route("/projects/{id:int}", "Projects", GET=self._single("projects")),
            self.route(dd, "Departments", GET=self._listing(table, DISTRIBUTION_FILTERS)),
            self.route(dd + "/departments", "Departments", GET=self._distributions("department")),
            self.route(
                dd + "/distributions", "Departments", GET=self._distributions("distribution")
            ),
            self.route(dd + "/{id:int}", "Departments", GET=self._single(table)),
        ]

    def _listing(self, table: str, filters: Mapping[str, str]) -> Handler:
        def handler(call: Call) -> Reply:
            return collection(call, sorted_values(call.agreement.table(table)), filters)

        return handler

    def _single(self, table: str) -> Handler:
        def handler(call: Call) -> Reply:
            doc = call.agreement.table(table).get(call.params["id"])
            if doc is None:
                raise not_found(f"{table} {call.params['id']}")
            return Reply(200, linked_doc(doc, call.base))

        return handler

    def _distributions(self, distribution_type: str) -> Handler:
        def handler(call: Call) -> Reply:
            rows = sorted_values(call.agreement.table("departmentalDistributions"))
            rows = [d for d in rows if d["distributionType"] == distribution_type]
            return collection(call, rows, DISTRIBUTION_FILTERS)

        return handler
