"""The simulated identity server's routes: `/connect/authorize` (the consent page, or a
code at once under auto-approval) and `/connect/token` (codes and refresh tokens for
access tokens, client authenticated by Basic header or form)."""

from __future__ import annotations

import base64
import binascii
import html
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from worker.simulators.common import OAuthError
from worker.simulators.eaccounting.auth import KNOWN_SCOPES, REQUIRED_SCOPES
from worker.simulators.eaccounting.routing import json_response

if TYPE_CHECKING:
    from worker.simulators.eaccounting.simulator import EAccountingSimulator

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class IdentityRoutes:
    def __init__(self, sim: EAccountingSimulator) -> None:
        self.sim = sim

    def routes(self) -> list[Route]:
        return [
            Route("/connect/authorize", self.authorize, methods=["GET", "POST"]),
            Route("/connect/token", self.token, methods=["POST"]),
        ]

    async def authorize(self, request: Request) -> Response:
        params: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.form()).items()})
        if params.get("client_id") != self.sim.client_id:
            return _error_page("The client is unknown (client_id).")
        redirect_uri = params.get("redirect_uri", "")
        if not self._redirect_allowed(redirect_uri):
            return _error_page("The redirect_uri is not registered for this client.")
        state = params.get("state")
        if params.get("response_type") != "code":
            return _redirect_error(
                redirect_uri, "unsupported_response_type", "Only response_type=code.", state
            )
        scopes = tuple(dict.fromkeys(params.get("scope", "").split()))
        scope_problem = _scope_problem(scopes)
        if scope_problem:
            return _redirect_error(redirect_uri, "invalid_scope", scope_problem, state)
        if request.method == "POST":
            return self._consent_answer(params, redirect_uri, scopes, state)
        with self.sim.lock:
            chosen = self._preselected_company(params.get("login_hint"))
        if self.sim.config.auto_approve and chosen is not None:
            return self._redirect_with_code(chosen, redirect_uri, scopes, state)
        return self._consent_page(params)

    def _redirect_allowed(self, uri: str) -> bool:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            return False
        if self.sim.redirect_uris is not None:
            return uri in self.sim.redirect_uris
        return parts.scheme == "https" or (parts.hostname or "") in _LOOPBACK

    def _preselected_company(self, login_hint: str | None) -> str | None:
        if login_hint and login_hint in self.sim.companies:
            return login_hint
        return next(iter(self.sim.companies)) if len(self.sim.companies) == 1 else None

    def _consent_answer(
        self, params: dict[str, str], redirect_uri: str, scopes: tuple[str, ...], state: str | None
    ) -> Response:
        if params.get("decision") != "allow":
            return _redirect_error(redirect_uri, "access_denied", "The user denied access.", state)
        company_id = params.get("company_id", "")
        if company_id not in self.sim.companies:
            return _error_page("Choose one of the listed companies.")
        return self._redirect_with_code(company_id, redirect_uri, scopes, state)

    def _redirect_with_code(
        self, company_id: str, redirect_uri: str, scopes: tuple[str, ...], state: str | None
    ) -> Response:
        with self.sim.lock:
            code = self.sim.tokens.new_code(company_id, self.sim.client_id, redirect_uri, scopes)
        query = {"code": code, **({"state": state} if state is not None else {})}
        return RedirectResponse(_with_query(redirect_uri, query), status_code=302)

    def _consent_page(self, params: dict[str, str]) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
            if k in ("client_id", "redirect_uri", "response_type", "scope", "state", "acr_values")
        )
        with self.sim.lock:
            companies = [
                (cid, c.settings["Name"], c.country) for cid, c in self.sim.companies.items()
            ]
        options = "".join(
            f'<li><label><input type="radio" name="company_id" value="{html.escape(cid)}"'
            f" required> {html.escape(name)} ({country}, {html.escape(cid)})"
            "</label></li>"
            for cid, name, country in companies
        )
        scopes = html.escape(params.get("scope", ""))
        page = (
            "<!doctype html><html><head><title>Visma eAccounting (simulated) - sign in</title></head>"
            "<body><h1>Select company</h1>"
            f"<p>The application <b>{html.escape(self.sim.client_id)}</b> asks for: {scopes}</p>"
            f'<form method="post" action="/connect/authorize">{hidden}<ul>{options}</ul>'
            '<button name="decision" value="allow">Allow</button> '
            '<button name="decision" value="deny">Deny</button></form></body></html>'
        )
        return HTMLResponse(page)

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        grant_type = form.get("grant_type", "")
        with self.sim.lock:
            self.sim.tokens.calls[grant_type or "(none)"] += 1
        try:
            self._authenticate_client(request, form)
            with self.sim.lock:
                answer = self._grant(grant_type, form)
        except OAuthError as error:
            headers = {"Cache-Control": "no-store"}
            if error.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="identity"'
            return json_response(error.body(), error.status, headers)
        return json_response(answer, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _authenticate_client(self, request: Request, form: dict[str, str]) -> None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            client_id, secret = _basic_credentials(header[6:])
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        if client_id != self.sim.client_id or secret != self.sim.client_secret:
            raise OAuthError("invalid_client", "Client authentication failed.", status=401)

    def _grant(self, grant_type: str, form: dict[str, str]) -> dict[str, object]:
        if grant_type == "authorization_code":
            if not form.get("code") or not form.get("redirect_uri"):
                raise OAuthError("invalid_request", "code and redirect_uri are required.")
            return self.sim.tokens.redeem_code(
                form["code"], self.sim.client_id, form["redirect_uri"]
            )
        if grant_type == "refresh_token":
            if not form.get("refresh_token"):
                raise OAuthError("invalid_request", "refresh_token is required.")
            return self.sim.tokens.use_refresh(form["refresh_token"], self.sim.client_id)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported.")


def _scope_problem(scopes: tuple[str, ...]) -> str | None:
    missing = [s for s in REQUIRED_SCOPES if s not in scopes]
    if missing:
        return f"The scope must include {' and '.join(missing)}."
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    return f"Unknown scope(s): {' '.join(unknown)}." if unknown else None


def _basic_credentials(encoded: str) -> tuple[str | None, str | None]:
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, _, secret = decoded.partition(":")
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def _with_query(uri: str, query: dict[str, str]) -> str:
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{urlencode(query)}"


def _redirect_error(uri: str, error: str, description: str, state: str | None) -> Response:
    query = {"error": error, "error_description": description}
    if state is not None:
        query["state"] = state
    return RedirectResponse(_with_query(uri, query), status_code=302)


def _error_page(message: str) -> Response:
    page = (
        "<!doctype html><html><head><title>Error</title></head><body>"
        f"<h1>Sign-in error</h1><p>{html.escape(message)}</p></body></html>"
    )
    return HTMLResponse(page, status_code=400)
