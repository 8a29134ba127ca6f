"""Run a real OPA server as a child process on a loopback port; wait for health; stop on close.

The server admits only requests bearing a random token that the node holds in memory: OPA runs
with `--authentication=token --authorization=basic` and a static system authz policy that
compares the SHA-256 of the presented token with a hash handed over in the child's environment.
Neither the process list nor any file nor OPA's logs carry the token itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from coopfed.node.policy.errors import PolicyUnavailable
from coopfed.node.policy.opa_http import OpaHttp

_BIND_ATTEMPTS = 3
_TOKEN_HASH_ENV = "COOPFED_OPA_TOKEN_SHA256"
AUTHZ_POLICY = f"""package system.authz

# Only the node that started this server, by its bearer token (see coopfed.node.policy.sidecar).
default allow := false

allow if crypto.sha256(input.identity) == opa.runtime().env.{_TOKEN_HASH_ENV}
"""


class OpaSidecar:
    """`opa run --server` owned by the node. Usable as a context manager.

    OPA does not log the port it bound for `--addr :0`, so a free port is chosen by binding
    port 0 and releasing it; if another process takes it first OPA exits, and a new port is
    tried. Each start labels the server with a random nonce, and readiness requires /health
    and that nonce in /v1/config, so a foreign server on the port is never mistaken for
    ours. `paths` are loaded at start (files or directories; *_test.rego are ignored).
    `token` is the bearer token every request must carry (authenticate=False: none, for
    tools that run OPA on files only).
    """

    def __init__(
        self,
        binary: str | Path,
        paths: Sequence[str | Path] = (),
        *,
        host: str = "127.0.0.1",
        startup_timeout: float = 15.0,
        args: Sequence[str] = (),
        authenticate: bool = True,
    ) -> None:
        self.binary = str(binary)
        self.paths = [str(p) for p in paths]
        self.args = list(args)  # more `opa run` flags, e.g. --bundle and --verification-key
        self.host = host
        self.startup_timeout = startup_timeout
        self.port = 0
        self.token = secrets.token_urlsafe(32) if authenticate else ""
        self._nonce = ""
        self._authz: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None
        self._client: OpaHttp | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> str:
        """Start OPA and return its URL once /health answers 200."""
        if self._proc is not None:
            return self.url
        if not os.access(self.binary, os.X_OK):
            raise PolicyUnavailable(f"no executable OPA binary at {self.binary}")
        last_log = ""
        for _ in range(_BIND_ATTEMPTS):
            self.port = _free_port(self.host)
            self._nonce = secrets.token_hex(8)
            self._spawn()
            if self._wait_healthy():
                return self.url
            last_log = self._read_log()
            self.stop()
            if "address already in use" not in last_log:
                break
        raise PolicyUnavailable(f"OPA did not become healthy: {last_log[-500:]}")

    def stop(self, timeout: float = 5.0) -> None:
        """Ask OPA to shut down, kill it if it will not, and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._authz is not None:
            self._authz.cleanup()
            self._authz = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> OpaSidecar:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self) -> None:
        # OPA's output goes to a file, not a pipe nobody reads, so a chatty server cannot block.
        self._log = tempfile.NamedTemporaryFile(prefix="coopfed-opa-", suffix=".log")  # noqa: SIM115
        args = [
            self.binary,
            "run",
            "--server",
            "--addr",
            f"{self.host}:{self.port}",
            "--disable-telemetry",
            "--log-level",
            "error",
            "--set",
            f"labels.coopfed_sidecar={self._nonce}",
            "--ignore",
            "*_test.rego",
            *self._auth_args(),
            *self.args,
            *self.paths,
        ]
        env = dict(os.environ)
        if self.token:
            env[_TOKEN_HASH_ENV] = hashlib.sha256(self.token.encode()).hexdigest()
        self._proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def _auth_args(self) -> list[str]:
        if not self.token:
            return []
        self._authz = tempfile.TemporaryDirectory(prefix="coopfed-opa-authz-")  # 0700
        policy = Path(self._authz.name, "authz.rego")
        policy.write_text(AUTHZ_POLICY, encoding="utf-8")
        return ["--authentication=token", "--authorization=basic", str(policy)]

    def _wait_healthy(self) -> bool:
        """Poll until our OPA is healthy, it exits, or the start-up timeout passes."""
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.01
        while time.monotonic() < deadline:
            if self._http().probe("health") is not None and self._is_ours():
                return True
            # Waiting on the process doubles as the poll delay and notices an early exit.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(delay)
                return False
            delay = min(delay * 2, 0.2)
        return False

    def _http(self) -> OpaHttp:
        """The client for this start's port, with the token (made once per start)."""
        if self._client is None or self._client.url != self.url:
            self._client = OpaHttp(self.url, token=self.token, retries=0)
        return self._client

    def _is_ours(self) -> bool:
        config = self._http().probe("v1/config")
        try:
            return json.loads(config or b"{}")["result"]["labels"]["coopfed_sidecar"] == self._nonce
        except (ValueError, KeyError, TypeError):
            return False

    def _read_log(self) -> str:
        if self._log is None:
            return ""
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
