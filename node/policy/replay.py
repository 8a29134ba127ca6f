"""Evaluate many logged inputs against one policy revision, compiled once, in batches on any engine."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.engine import PolicyEngine
from coopfed.node.policy.errors import PolicyError
from coopfed.node.policy.loader import PolicySet, load_policies
from coopfed.node.policy.opa import OpaEngine
from coopfed.node.policy.wasm import WasmEngine

Answer = tuple[bool, Any]
"""(True, the document or None where undefined) or (False, the error message)."""

ENGINES = ("auto", "wasm", "opa", "embedded")


class Replayer:
    """One policy revision on one engine, answering many inputs for one path in batches.

    A batch that fails (one input raising an evaluation error) is halved until the error is
    pinned to the inputs that cause it, so one bad input costs a few more calls, not a
    batch of single ones. An engine that cannot be reached, or answers from another
    revision, fails the whole replay.
    """

    def __init__(self, engine: PolicyEngine, policies: PolicySet, name: str) -> None:
        self.policies, self.name = policies, name
        self._engine = engine

    def evaluate_many(
        self, path: str, inputs: Sequence[Any], texts: Sequence[bytes] | None = None
    ) -> list[Answer]:
        """`texts`, the inputs as JSON text, spare an engine that reads text encoding them again."""
        try:
            if texts is not None and isinstance(self._engine, WasmEngine):
                values = self._engine.evaluate_texts(path, texts)
            else:
                values = self._engine.evaluate_many(path, inputs)
            return [(True, value) for value in values]
        except PolicyError as exc:
            if len(inputs) <= 1:
                return [(False, str(exc))] * len(inputs)
        half = len(inputs) // 2
        first, second = (None, None) if texts is None else (texts[:half], texts[half:])
        answers = self.evaluate_many(path, inputs[:half], first)
        return answers + self.evaluate_many(path, inputs[half:], second)

    def close(self) -> None:
        self._engine.close()


def make_replayer(policy_dir: Path, engine: str, opa_binary: str | None) -> Replayer:
    """`wasm` or `opa` (both need the OPA binary), `embedded`, or `auto`: wasm where there is
    an OPA binary, else embedded."""
    return replayer_for(load_policies(policy_dir), engine, opa_binary)


def replayer_for(policies: PolicySet, engine: str, opa_binary: str | None) -> Replayer:
    """As make_replayer, for a policy set already in memory (a proposed change, say)."""
    if engine == "auto":
        engine = "wasm" if opa_binary else "embedded"
    if engine == "embedded":
        return Replayer(EmbeddedEngine(policies), policies, "embedded")
    if engine not in ENGINES:
        raise PolicyError(f"unknown replay engine {engine!r} ({', '.join(ENGINES)})")
    if not opa_binary:
        raise PolicyError(f"the {engine} replay engine needs an OPA binary")
    if engine == "wasm":
        return Replayer(WasmEngine(policies, opa_binary), policies, "wasm")
    return Replayer(OpaEngine.with_sidecar(opa_binary, policies, timeout=120.0), policies, "OPA")


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
