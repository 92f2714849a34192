"""Sign in and sign out."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from worker.web import throttle
from worker.web.access import allow
from worker.web.access import public as public_rule
from worker.web.accounts import authenticate, sign_in_possible
from worker.web.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Principal,
    cookie_options,
    end_session,
    login_csrf_ok,
    new_login_csrf,
    require_auth,
    start_session,
)
from worker.web.templating import render

public = APIRouter(include_in_schema=False)


protected = APIRouter(include_in_schema=False, dependencies=[Depends(require_auth)])


def _safe_next(target: str | None) -> str:
    """Only local paths, so the sign-in page cannot be used to redirect elsewhere. Control
    characters are refused too: browsers drop tabs and newlines from a URL, so `/<tab>/host`
    would become `//host`, another site."""
    if not target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(request: Request, next_path: str, error: str = "", status: int = 200) -> Response:
    token = new_login_csrf()
    response = render(
        request,
        "login.html",
        {
            "login_csrf": token,
            "next": _safe_next(next_path),
            "error": error,
            "possible": sign_in_possible(),
        },
        status,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, **cookie_options(request))
    return response


@public.get("/login", response_class=HTMLResponse, dependencies=public_rule())
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, next)


@public.post("/login", dependencies=public_rule())
def login(
    request: Request,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    if not login_csrf_ok(request, csrf_token):
        return _login_page(request, next, "The form expired; please sign in again.", 403)
    address = request.client.host if request.client else "unknown"
    wait = throttle.wait_seconds(address, username)
    if wait:
        text = f"Too many failed attempts from your address; try again in {math.ceil(wait)} s."
        response = _login_page(request, next, text, 429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    user = authenticate(username, password)
    if user is None:
        throttle.record_failure(address, username)
        return _login_page(request, next, "Wrong username or password.", 401)
    throttle.record_success(address, username)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, start_session(user), **cookie_options(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@protected.post("/logout", dependencies=allow())
def logout(request: Request, principal: Annotated[Principal, Depends(require_auth)]) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        end_session(token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
