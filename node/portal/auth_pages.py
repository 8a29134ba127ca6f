"""Joining, signing in and out (one session or all of them), and the account page."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from coopfed.node.errors import CoopfedError, Unauthenticated
from coopfed.node.portal.accounts import MIN_PASSWORD, SESSION_TTL_S, Account
from coopfed.node.portal.app import call, page, portal, render, text
from coopfed.node.portal.security import SESSION_COOKIE, set_cookie


def start_session(request: Request, account_id: str, to: str = "/consent") -> Response:
    """Signed in: a new session cookie (a new value, so a planted one is never reused)."""
    response = RedirectResponse(to, status_code=303)
    session_cookie(request, response, portal(request).accounts.open_session(account_id))
    return response


def session_cookie(request: Request, response: Response, token: str) -> None:
    set_cookie(response, SESSION_COOKIE, token, secure=portal(request).secure, max_age=SESSION_TTL_S)


@page(public=True)
async def signup(request: Request, form: FormData | None = None) -> Response:
    if form is None:
        return render(request, "signup.html", min_password=MIN_PASSWORD, values={})
    values = {k: text(form, k) for k in ("display_name", "login", "invitation")}
    p = portal(request)
    try:
        joined = await call(
            p.accounts.sign_up, p.parts.register,
            values["display_name"], values["login"], text(form, "password"), values["invitation"],
        )  # fmt: skip
    except CoopfedError as exc:
        return render(request, "signup.html", 400, min_password=MIN_PASSWORD, values=values, error=exc)
    to = "/consent?welcome=1" if joined.admitted else "/waiting?applied=1"
    return await call(start_session, request, joined.member_id, to)


@page(public=True)
async def signin(request: Request, form: FormData | None = None) -> Response:
    if form is None:
        return render(request, "signin.html", login="")
    p = portal(request)
    login = text(form, "login").strip().casefold()
    client = request.client.host if request.client else ""
    try:
        p.limiter.check(login, client)
        account = await call(p.accounts.verify_password, login, text(form, "password"))
    except Unauthenticated as exc:
        p.limiter.failed(login, client)
        return render(request, "signin.html", 401, login=login, error=exc)
    except CoopfedError as exc:
        return render(request, "signin.html", 429, login=login, error=exc)
    p.limiter.succeeded(login)
    return await call(start_session, request, account.member_id)


@page(applicant=True)
async def signout(request: Request, account: Account, form: FormData) -> Response:
    p = portal(request)
    if text(form, "everywhere"):
        await call(p.accounts.close_all_sessions, account.member_id)
    else:
        await call(p.accounts.close_session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/signin?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=p.secure, httponly=True, samesite="strict")
    return response


@page(applicant=True)
async def waiting(request: Request, account: Account) -> Response:
    """An applicant's page: the board will decide; what they can do meanwhile (or why it refused)."""
    if account.admitted:
        return RedirectResponse("/consent", status_code=303)
    member = await call(portal(request).parts.store.get_member, account.member_id)
    return render(request, "waiting.html", member=member, applied="applied" in request.query_params)


@page(applicant=True)
async def account_page(request: Request, account: Account) -> Response:
    passkeys = await call(portal(request).accounts.passkeys, account.member_id)
    return render(request, "account.html", passkeys=len(passkeys))


routes = [
    Route("/signup", signup, methods=["GET", "POST"]),
    Route("/signin", signin, methods=["GET", "POST"]),
    Route("/signout", signout, methods=["POST"]),
    Route("/account", account_page),
    Route("/waiting", waiting),
]
