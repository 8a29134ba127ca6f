"""Passkeys (WebAuthn): adding one to an account, and signing in with it."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlsplit

import webauthn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialRequestOptions,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from coopfed.node.errors import CoopfedError, InvalidArgument, Unauthenticated
from coopfed.node.portal.accounts import Account
from coopfed.node.portal.app import HTTP_STATUS, Portal, call, portal, signed_in
from coopfed.node.portal.auth_pages import session_cookie
from coopfed.node.portal.security import binding

CHALLENGE_TTL_S = 300


class Challenges:
    """The one challenge each browser (by its CSRF binding) is answering, for a few minutes."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, challenge: bytes) -> None:
        with self._lock:
            now = time.monotonic()
            self._open = {k: v for k, v in self._open.items() if v[1] > now}
            self._open[key] = (challenge, now + CHALLENGE_TTL_S)

    def take(self, key: str) -> bytes:
        with self._lock:
            challenge, until = self._open.pop(key, (b"", 0.0))
        if not challenge or until < time.monotonic():
            raise Unauthenticated("The passkey request expired; try again.", code="portal.passkey_expired")
        return challenge


_challenges = Challenges()


def rp_id(p: Portal) -> str:
    return urlsplit(p.origin).hostname or "localhost"


async def _json(request: Request) -> tuple[Portal, str, dict]:
    """The portal, the CSRF binding and the JSON body, after the CSRF header is checked."""
    p = portal(request)
    key = binding(request)
    p.csrf.check(key, request.headers.get("x-csrf-token", ""))
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise InvalidArgument("The request was not JSON.", code="portal.json") from None
    return p, key, body if isinstance(body, dict) else {}


async def _account(request: Request) -> Account:
    account = await call(signed_in, request)
    if account is None:
        raise Unauthenticated("Sign in first.", code="portal.signin")
    return account


def _ask(key: str, options: PublicKeyCredentialCreationOptions | PublicKeyCredentialRequestOptions) -> dict:
    """The options as the browser takes them; their challenge waits for this browser's answer."""
    _challenges.put(key, options.challenge)
    return json.loads(webauthn.options_to_json(options))


def _descriptors(passkeys: list[tuple[bytes, bytes, int]]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=credential_id) for credential_id, _, _ in passkeys]


def _answer(handler):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        try:
            response = JSONResponse(await handler(request))
            if token := getattr(request.state, "session_token", None):
                session_cookie(request, response, token)
            return response
        except CoopfedError as exc:
            return JSONResponse({"message": exc.message}, status_code=HTTP_STATUS.get(type(exc).code, 500))
        except WebAuthnException:
            return JSONResponse({"message": "The passkey's answer could not be checked."}, status_code=400)

    return endpoint


@_answer
async def register_options(request: Request) -> dict:
    p, key, _ = await _json(request)
    account = await _account(request)
    existing = await call(p.accounts.passkeys, account.member_id)
    options = webauthn.generate_registration_options(
        rp_id=rp_id(p), rp_name=p.parts.policy.data["coop"]["name"], user_name=account.login,
        user_id=account.member_id.encode(), user_display_name=account.display_name,
        exclude_credentials=_descriptors(existing),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )  # fmt: skip
    return _ask(key, options)


@_answer
async def register(request: Request) -> dict:
    p, key, body = await _json(request)
    account = await _account(request)
    verified = webauthn.verify_registration_response(
        credential=body,
        expected_challenge=_challenges.take(key),
        expected_rp_id=rp_id(p),
        expected_origin=p.origin,
    )
    await call(
        p.accounts.add_passkey,
        account.member_id, verified.credential_id, verified.credential_public_key, verified.sign_count,
    )  # fmt: skip
    return {"ok": True}


@_answer
async def signin_options(request: Request) -> dict:
    p, key, body = await _json(request)
    account = await call(p.accounts.find, str(body.get("login", "")))
    found = await call(p.accounts.passkeys, account.member_id) if account else []
    options = webauthn.generate_authentication_options(
        rp_id=rp_id(p),
        allow_credentials=_descriptors(found),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return _ask(key, options)


@_answer
async def signin(request: Request) -> dict:
    p, key, body = await _json(request)
    login = str(body.get("login", "")).strip().casefold()
    client = request.client.host if request.client else ""
    p.limiter.check(login, client)
    challenge = _challenges.take(key)
    account = await call(p.accounts.find, login)
    credential = body.get("credential") or {}
    raw_id = webauthn.base64url_to_bytes(str(credential.get("rawId", ""))) if credential else b""
    stored = {c[0]: c for c in (await call(p.accounts.passkeys, account.member_id) if account else [])}
    if account is None or raw_id not in stored:
        p.limiter.failed(login, client)
        raise Unauthenticated("That passkey is not one of this account's.", code="portal.passkey_unknown")
    _, public_key, count = stored[raw_id]
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id(p),
            expected_origin=p.origin, credential_public_key=public_key, credential_current_sign_count=count,
        )  # fmt: skip
    except WebAuthnException:
        p.limiter.failed(login, client)
        raise
    await call(p.accounts.passkey_used, raw_id, verified.new_sign_count)
    p.limiter.succeeded(login)
    request.state.session_token = await call(p.accounts.open_session, account.member_id)
    return {"next": "/consent"}


routes = [
    Route("/passkeys/register/options", register_options, methods=["POST"]),
    Route("/passkeys/register", register, methods=["POST"]),
    Route("/passkeys/signin/options", signin_options, methods=["POST"]),
    Route("/passkeys/signin", signin, methods=["POST"]),
]
