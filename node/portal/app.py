"""The portal's web application: templates, sign-in state, CSRF, errors, and the routes of every page."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from coopfed.node.errors import CoopfedError
from coopfed.node.localtime import local_day, local_time
from coopfed.node.portal.accounts import Account, Accounts
from coopfed.node.portal.parts import PortalParts
from coopfed.node.portal.security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    VISITOR_COOKIE,
    Csrf,
    SignInLimiter,
    binding,
    set_cookie,
)

HTTP_STATUS = {
    "invalid_argument": 400, "unauthenticated": 401, "permission_denied": 403, "not_found": 404,
    "already_exists": 409, "failed_precondition": 409, "resource_exhausted": 429, "unavailable": 503,
}  # fmt: skip
# The member's pages, then the co-op's.
MEMBER_NAV = [
    ("/consent", "My consent"), ("/access", "Who used my data"), ("/energy", "My energy"),
    ("/statement", "My statement"), ("/compare", "How my home compares"), ("/data", "My data"),
    ("/neighbourhood", "Our neighbourhood"), ("/decides", "How our co-op decides"), ("/ballots", "Ballots"),
]  # fmt: skip
BOARD_NAV = [
    ("/board", "Requests to review"), ("/board/admissions", "Admissions"), ("/board/decisions", "Decisions"),
    ("/board/grants", "Grants"),
]  # fmt: skip
# What an applicant can use while the board decides on them.
APPLICANT_NAV = [("/waiting", "Your application"), ("/decides", "How our co-op decides")]
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@dataclass
class Portal:
    """What every page handler reads: the node's parts, accounts, and the portal's own security state."""

    parts: PortalParts
    accounts: Accounts
    csrf: Csrf
    limiter: SignInLimiter
    templates: Jinja2Templates
    secure: bool  # cookies marked Secure (everywhere but plain-http loopback)
    origin: str  # e.g. "https://coop.example:8443", for WebAuthn

    @property
    def tz(self) -> str:
        return self.parts.policy.data["coop"].get("time_zone", "Europe/London")


def portal(request: Request) -> Portal:
    return request.app.state.portal


def signed_in(request: Request) -> Account | None:
    """The account of the request's session, looked up once per request."""
    if not hasattr(request.state, "account"):
        token = request.cookies.get(SESSION_COOKIE)
        request.state.account = portal(request).accounts.session(token) if token else None
    return request.state.account


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    p = portal(request)
    account = signed_in(request)
    nav = _nav(account) if account else []
    response = p.templates.TemplateResponse(
        request,
        template,
        {
            "account": account,
            "nav": nav,
            "coop": p.parts.policy.data["coop"]["name"],
            "csrf": p.csrf.token(binding(request) or _new_visitor(request)),
            "csrf_field": CSRF_FIELD,
            "path": request.url.path,
            **context,
        },
        status_code=status,
    )
    if visitor := getattr(request.state, "new_visitor", None):
        set_cookie(response, VISITOR_COOKIE, visitor, secure=p.secure)
    return response


def _nav(account: Account) -> list[tuple[str, str]]:
    if not account.admitted:
        return APPLICANT_NAV
    return MEMBER_NAV + (BOARD_NAV if account.board else [])


def _new_visitor(request: Request) -> str:
    request.state.new_visitor = secrets.token_urlsafe(24)
    return request.state.new_visitor


Handler = Callable[..., Awaitable[Response]]


def page(
    *, board: bool = False, public: bool = False, applicant: bool = False
) -> Callable[[Handler], Handler]:
    """A page handler: signed in (with the board role where asked) unless public, and admitted
    unless `applicant` pages are open to applicants too; on POST, the form's CSRF token is
    checked before the handler runs and the form is passed to it."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            account = await run_in_threadpool(signed_in, request)
            if not public and account is None:
                return RedirectResponse("/signin", status_code=303)
            if not (public or applicant) and account and not account.admitted:
                return RedirectResponse("/waiting", status_code=303)
            if board and not (account and account.board):
                raise HTTPException(403, "This page is for the co-op's board.")
            args: list[Any] = [request, account] if not public else [request]
            if request.method == "POST":
                form = await request.form()
                portal(request).csrf.check(binding(request), str(form.get(CSRF_FIELD, "")))
                args.append(form)
            return await handler(*args)

        return endpoint

    return wrap


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Domain functions block (SQLite, the policy engine): run them off the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)


def text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


async def _coopfed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoopfedError)
    status = HTTP_STATUS.get(type(exc).code, 500)
    return render(request, "error.html", status=status, message=exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "There is no such page."}.get(exc.status_code, exc.detail)
    return render(request, "error.html", status=exc.status_code, message=message)


async def _unexpected(request: Request, exc: Exception) -> Response:
    return render(
        request, "error.html", status=500, message="Something went wrong on our side. Try again later."
    )


def create_app(parts: PortalParts, *, secure: bool, origin: str) -> Starlette:
    """The portal of the node `parts` come from; `origin` is the address members reach it at."""
    from coopfed.node.portal import (
        auth_pages,
        ballot_pages,
        board_pages,
        coop_pages,
        member_pages,
        passkeys,
    )

    files = resources.files("coopfed.node.portal")
    templates = Jinja2Templates(directory=str(files / "templates"))  # autoescapes .html
    p = Portal(parts, Accounts(parts.store), Csrf(), SignInLimiter(), templates, secure, origin)
    templates.env.filters["when"] = lambda at: local_time(at, p.tz)
    templates.env.filters["day"] = lambda at: local_day(at, p.tz)
    routes = [
        *auth_pages.routes, *passkeys.routes, *member_pages.routes, *coop_pages.routes, *board_pages.routes,
        *ballot_pages.routes, Route("/", _home),
        Mount("/static", StaticFiles(directory=str(files / "static")), name="static"),
    ]  # fmt: skip
    app = Starlette(
        routes=routes,
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=_headers)],
        exception_handlers={CoopfedError: _coopfed_error, HTTPException: _http_error, Exception: _unexpected},
    )
    app.state.portal = p
    return app


async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")  # members' data stays off shared disks
    return response


async def _home(request: Request) -> Response:
    account = await run_in_threadpool(signed_in, request)
    return RedirectResponse("/consent" if account else "/signin", status_code=303)
