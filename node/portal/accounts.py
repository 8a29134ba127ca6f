"""Portal accounts: logins, Argon2id passwords, passkeys, server-side sessions, and joining the co-op."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from coopfed.node.errors import (
    AlreadyExists,
    CoopfedError,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
)
from coopfed.node.members import Registration
from coopfed.node.storage import InvalidData, Store
from coopfed.node.storage.sql import SqlStore

SESSION_TTL_S = 12 * 3600  # a shared family computer should not stay signed in for days
MIN_PASSWORD = 10
_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
# Verified against when the login is unknown, so a wrong login costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Account:
    member_id: str
    login: str
    role: str  # "member" or "board"
    display_name: str
    admitted: bool  # False for an applicant (or one the board refused): most pages wait for admission

    @property
    def board(self) -> bool:
        return self.role == "board"


@dataclass(frozen=True)
class Joined:
    member_id: str
    admitted: bool  # False while the co-op's board has still to admit the applicant


Register = Callable[[str, str], Registration]  # (display name, invitation code): members.register


def join(register: Register, display_name: str, invitation: str) -> Joined:
    """The one place a sign-up becomes a member: a valid invitation admits at once; without one
    the member is an applicant until the board decides (a wrong code is refused, nothing kept)."""
    if not 1 <= len(display_name.strip()) <= 200:  # as register checks, in the form's words
        raise InvalidArgument(
            "Give your name, or your household's, in 1 to 200 characters.",
            code="portal.display_name",
            field="display_name",
        )
    try:
        registered = register(display_name, invitation)
    except CoopfedError as exc:  # unknown, used, expired or too long: one answer in plain words
        if exc.field != "invitation_code":
            raise
        raise PermissionDenied(
            "That invitation code is unknown, used already or out of date. Ask the co-op for a new one,"
            " or leave the box empty to apply and let the board decide.",
            code="member.invitation",
            field="invitation",
        ) from None
    return Joined(registered.member_id, admitted=registered.status == "admitted")


def normal_login(login: str) -> str:
    login = login.strip().casefold()
    if not 3 <= len(login) <= 254 or any(c.isspace() for c in login):
        raise InvalidArgument(
            "Your sign-in name needs 3 to 254 characters and no spaces, for example your email address.",
            code="portal.login",
            field="login",
        )
    return login


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidArgument(
            f"Choose a password of at least {MIN_PASSWORD} characters.",
            code="portal.password",
            field="password",
        )


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


class Accounts:
    """Account, passkey and session rows in the node's database, on the member store's connections."""

    def __init__(self, store: Store) -> None:
        assert isinstance(store, SqlStore)
        self._store = store

    def sign_up(
        self, register: Register, display_name: str, login: str, password: str, invitation: str
    ) -> Joined:
        login = normal_login(login)
        if password:
            check_password(password)  # before anything is written
        if self.find(login) is not None:
            raise AlreadyExists("That sign-in name is taken; choose another.", code="portal.login_taken")
        joined = join(register, display_name, invitation)
        self.add(joined.member_id, login, hash_password(password) if password else "")
        return joined

    def add(self, member_id: str, login: str, password_hash: str, role: str = "member") -> None:
        try:
            with self._store._write() as conn:
                conn.execute(
                    "INSERT INTO portal_accounts (member_id, login, password_hash, role, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (member_id, normal_login(login), password_hash, role, int(time.time())),
                )
        except InvalidData as exc:
            raise AlreadyExists(
                "That sign-in name is taken; choose another.", code="portal.login_taken"
            ) from exc

    def set_role(self, member_id: str, role: str) -> None:
        with self._store._write() as conn:
            conn.execute("UPDATE portal_accounts SET role = ? WHERE member_id = ?", (role, member_id))

    def find(self, login: str) -> Account | None:
        return self._account("a.login = ?", login.strip().casefold())

    def get(self, member_id: str) -> Account | None:
        return self._account("a.member_id = ?", member_id)

    def _account(self, where: str, value: str) -> Account | None:
        with self._store._read() as conn:
            row = conn.execute(
                "SELECT a.member_id, a.login, a.role, m.display_name, m.admitted_at IS NOT NULL"  # noqa: S608 - ours
                " FROM portal_accounts a"
                f" JOIN members m ON m.member_id = a.member_id WHERE {where} AND m.erased_at IS NULL",
                (value,),
            ).fetchone()
        return Account(row[0], row[1], row[2], row[3], bool(row[4])) if row else None

    def verify_password(self, login: str, password: str) -> Account:
        """The account whose password this is; the same refusal for a wrong login or password."""
        account = self.find(login)
        with self._store._read() as conn:
            row = (
                account
                and conn.execute(
                    "SELECT password_hash FROM portal_accounts WHERE member_id = ?", (account.member_id,)
                ).fetchone()
            )
        stored = row[0] if row and row[0] else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            account = None
        if account is None or stored is _DUMMY_HASH:
            raise Unauthenticated("That sign-in name and password do not match.", code="portal.signin")
        if _hasher.check_needs_rehash(stored):
            with self._store._write() as conn:
                conn.execute(
                    "UPDATE portal_accounts SET password_hash = ? WHERE member_id = ?",
                    (_hasher.hash(password), account.member_id),
                )
        return account

    def remove(self, member_id: str) -> None:
        """On erasure: the login (often an email address) goes with the member's other details."""
        with self._store._write() as conn:
            conn.execute("DELETE FROM portal_accounts WHERE member_id = ?", (member_id,))

    # --- passkeys -------------------------------------------------------------------------------

    def add_passkey(self, member_id: str, credential_id: bytes, public_key: bytes, sign_count: int) -> None:
        with self._store._write() as conn:
            conn.execute(
                "INSERT INTO portal_passkeys (credential_id, member_id, public_key, sign_count, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (credential_id, member_id, public_key, sign_count, int(time.time())),
            )

    def passkeys(self, member_id: str) -> list[tuple[bytes, bytes, int]]:
        with self._store._read() as conn:
            return conn.execute(
                "SELECT credential_id, public_key, sign_count FROM portal_passkeys WHERE member_id = ?",
                (member_id,),
            ).fetchall()

    def passkey_used(self, credential_id: bytes, sign_count: int) -> None:
        with self._store._write() as conn:
            conn.execute(
                "UPDATE portal_passkeys SET sign_count = ? WHERE credential_id = ?",
                (sign_count, credential_id),
            )

    # --- sessions -------------------------------------------------------------------------------

    def open_session(self, member_id: str) -> str:
        """A new session; returns the cookie value (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = int(time.time())
        with self._store._write() as conn:
            conn.execute("DELETE FROM portal_sessions WHERE expires_at <= ?", (now,))
            conn.execute(
                "INSERT INTO portal_sessions (session_hash, member_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (_hash(token), member_id, now, now + SESSION_TTL_S),
            )
        return token

    def session(self, token: str) -> Account | None:
        """The account of a live session, or None (unknown, expired, or the member was erased)."""
        with self._store._read() as conn:
            row = conn.execute(
                "SELECT member_id FROM portal_sessions WHERE session_hash = ? AND expires_at > ?",
                (_hash(token), int(time.time())),
            ).fetchone()
        return self.get(row[0]) if row else None

    def close_session(self, token: str) -> None:
        with self._store._write() as conn:
            conn.execute("DELETE FROM portal_sessions WHERE session_hash = ?", (_hash(token),))

    def close_all_sessions(self, member_id: str) -> int:
        """Sign out everywhere: every session of the member ends, this one too."""
        with self._store._write() as conn:
            return conn.execute("DELETE FROM portal_sessions WHERE member_id = ?", (member_id,)).rowcount


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
