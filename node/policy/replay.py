"""Evaluate many logged inputs against one policy revision, compiled once: OPA in batches, or embedded."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import requests

from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.engine import check_path
from coopfed.node.policy.errors import PolicyError
from coopfed.node.policy.loader import PolicySet, load_policies
from coopfed.node.policy.sidecar import OpaSidecar

Answer = tuple[bool, Any]
"""(True, the document or None where undefined) or (False, the error message)."""


class Replayer(Protocol):
    """One policy revision, compiled once, answering many inputs for one document path."""

    policies: PolicySet

    def evaluate_many(self, path: str, inputs: Sequence[Any]) -> list[Answer]: ...

    def close(self) -> None: ...


class EmbeddedReplayer:
    """regopy, one input at a time (rego-cpp cannot batch: it crashes on `with input as`)."""

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies
        self._engine = EmbeddedEngine(policies)

    def evaluate_many(self, path: str, inputs: Sequence[Any]) -> list[Answer]:
        answers: list[Answer] = []
        for value in inputs:
            try:
                answers.append((True, self._engine.evaluate(path, value)))
            except PolicyError as exc:
                answers.append((False, str(exc)))
        return answers

    def close(self) -> None:
        self._engine.close()


class OpaReplayer:
    """A sidecar OPA loaded with the revision; one ad-hoc query evaluates a whole batch.

    The query is `[[n, v] | some n, x in input.batch; v := data.<path> with input as x]`, so
    a batch costs one HTTP exchange and one query compilation; indices left out were
    undefined. If a batch fails (one input raising an evaluation error), its inputs are
    evaluated one by one so the error is pinned to the input that caused it.
    """

    def __init__(self, binary: str, policy_dir: Path, *, timeout: float = 120.0) -> None:
        self.policies = load_policies(policy_dir)
        self._sidecar = OpaSidecar(binary, [policy_dir])
        self._sidecar.start()
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {self._sidecar.token}"
        self._timeout = timeout

    def evaluate_many(self, path: str, inputs: Sequence[Any]) -> list[Answer]:
        ref = "data." + check_path(path).replace("/", ".")
        query = f"x := [[n, v] | some n, i in input.batch; v := {ref} with input as i]"
        body = self._post("/v1/query", {"query": query, "input": {"batch": list(inputs)}})
        if body is not None:
            found = dict(body["result"][0]["x"]) if body.get("result") else {}
            return [(True, found.get(n)) for n in range(len(inputs))]
        return [self._one(path, value) for value in inputs]

    def _one(self, path: str, value: Any) -> Answer:
        body = self._post(f"/v1/data/{path}", {"input": value})
        if body is None:
            return False, self._last_error
        return True, body.get("result")

    def _post(self, route: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        try:
            response = self._session.post(self._sidecar.url + route, json=payload, timeout=self._timeout)
        except requests.RequestException as exc:
            raise PolicyError(f"OPA is unreachable: {exc}") from exc
        if response.status_code == 200:
            return response.json()
        try:
            self._last_error = str(response.json().get("message", response.text))[:500]
        except ValueError:
            self._last_error = response.text[:500]
        return None

    _last_error = ""

    def close(self) -> None:
        self._session.close()
        self._sidecar.stop()


def make_replayer(policy_dir: Path, engine: str, opa_binary: str | None) -> Replayer:
    """`opa` (needs the binary), `embedded`, or `auto`: OPA where there is a binary."""
    if engine == "opa" or (engine == "auto" and opa_binary):
        if not opa_binary:
            raise PolicyError("the opa replay engine needs an OPA binary")
        return OpaReplayer(opa_binary, policy_dir)
    if engine in ("embedded", "auto"):
        return EmbeddedReplayer(load_policies(policy_dir))
    raise PolicyError(f"unknown replay engine {engine!r} (auto, opa or embedded)")


def checkout(revision: str, workdir: Path, *, repo: Path, subdir: str = "policies") -> Path:
    """The policy directory as of a git revision, extracted under `workdir` (git is only read).

    A revision that names an existing directory is used as it is, so the working tree's
    policies can be compared before they are committed.
    """
    if Path(revision).is_dir():
        return Path(revision).resolve()
    try:
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", revision, "--", subdir],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise PolicyError(
            f"cannot read {subdir}/ at {revision!r}: {detail.decode(errors='replace')}"
        ) from exc
    target = Path(tempfile.mkdtemp(prefix="rev-", dir=workdir))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target / subdir
