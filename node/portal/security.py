"""Cookies, CSRF tokens and the sign-in rate limit."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import defaultdict, deque

from starlette.requests import Request
from starlette.responses import Response

from coopfed.node.errors import PermissionDenied, ResourceExhausted

SESSION_COOKIE = "coopfed_session"
VISITOR_COOKIE = "coopfed_visitor"  # binds the CSRF token of the sign-in and sign-up forms
CSRF_FIELD = "csrf_token"


def set_cookie(
    response: Response, name: str, value: str, *, secure: bool, max_age: int | None = None
) -> None:
    """HttpOnly and SameSite=Strict always; Secure except on plain-http loopback, where browsers
    would drop a Secure cookie (the portal refuses plain http anywhere else)."""
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, secure=secure, samesite="strict", path="/"
    )


class Csrf:
    """A token per session (or per visitor before sign-in): an HMAC, checked without storing it."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def token(self, binding: str) -> str:
        return hmac.new(self._key, binding.encode(), hashlib.sha256).hexdigest()

    def check(self, binding: str, given: str) -> None:
        if not binding or not hmac.compare_digest(self.token(binding), given):
            raise PermissionDenied(
                "This form has expired. Go back, reload the page and try again.", code="portal.csrf"
            )


def binding(request: Request) -> str:
    """What the CSRF token is bound to: the session cookie, else the visitor cookie."""
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(VISITOR_COOKIE) or ""


class SignInLimiter:
    """At most `per_login` failed sign-ins per login and `per_client` per client address in `window_s`."""

    def __init__(self, per_login: int = 5, per_client: int = 20, window_s: float = 900) -> None:
        self.limits = {"login": per_login, "client": per_client}
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, login: str, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (("login", login), ("client", client)):
                failures = self._failures[key]
                while failures and failures[0] <= now - self.window_s:
                    failures.popleft()
                if len(failures) >= self.limits[key[0]]:
                    wait = int(failures[0] + self.window_s - now) // 60 + 1
                    raise ResourceExhausted(
                        f"Too many tries to sign in. Wait {wait} minute{'s' if wait > 1 else ''} "
                        "and try again.",
                        code="portal.rate_limited",
                    )

    def failed(self, login: str, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._failures["login", login].append(now)
            self._failures["client", client].append(now)

    def succeeded(self, login: str) -> None:
        with self._lock:
            self._failures.pop(("login", login), None)
