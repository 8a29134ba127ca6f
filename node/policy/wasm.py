"""OPA's own compiler to WebAssembly (`opa build -t wasm`), evaluated in-process with wasmtime.

The policy set is compiled once per revision by the OPA binary (same planner as the OPA
server, so the same answers) and instantiated once; the data is parsed into the module's
heap once, and each evaluation writes its input after it and calls the one-shot `opa_eval`
export (OPA's Wasm ABI 1.2), resetting the heap to the same mark every time. A batch is one
call too: each entrypoint gets a wrapper rule that evaluates it over `input.batch` with
`with input as`, as the OPA engine's batch query does, so the Python cost of a call (writing
the input, reading and parsing the answer) is paid once per batch, not once per input. No host
builtins are needed by the repository's policies; a policy that needs one is refused at
load with its name. See node/policy/README.md for the figures that made this the default.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Sequence
from ctypes import byref
from pathlib import Path
from typing import Any, cast

import wasmtime
from wasmtime import _ffi
from wasmtime._func import enter_wasm as _enter_wasm

from coopfed.node.policy.engine import check_path, input_json
from coopfed.node.policy.errors import PolicyError
from coopfed.node.policy.loader import PolicySet

_PAGE = 65_536
_BUILD_TIMEOUT = 120
_NOT_A_RULE = "does not refer to a rule or policy decision"
_BATCH_PACKAGE = "coopfed_node_batch"  # the wrapper rules' package, beside the policy set's own
# Inputs per wasm call: the module frees nothing within a call, so its heap grows with the
# batch; a hundred amortise the call (measured: 19-20 us of CPU per consent decision at 100,
# 21-27 us at 25 or 400; one by one, 36 us p50).
_PER_CALL = 100


def _batch_rules(paths: set[str]) -> dict[str, str]:
    """Each entrypoint's wrapper rule, as an entrypoint path."""
    return {path: f"{_BATCH_PACKAGE}/r{n}" for n, path in enumerate(sorted(paths))}


def _batch_module(paths: set[str]) -> str:
    """A rule per entrypoint: [[index, document], ...] over input.batch, undefined ones left out.
    Segments are quoted as JSON strings, so no path can inject Rego."""
    lines = [f"package {_BATCH_PACKAGE}"]
    for path, rule in _batch_rules(paths).items():
        ref = "data" + "".join(f"[{json.dumps(segment)}]" for segment in path.split("/"))
        name = rule.rpartition("/")[2]
        lines.append(f"{name} := [[n, v] | some n, i in input.batch; v := {ref} with input as i]")
    return "\n\n".join(lines) + "\n"


@functools.cache
def _wasm_engine() -> wasmtime.Engine:
    """One compiler per process: modules of every revision share it."""
    return wasmtime.Engine()


class _Instance:
    """One instantiated policy module with the data parsed into its heap."""

    def __init__(self, module: wasmtime.Module, data: bytes) -> None:
        self.store = wasmtime.Store(_wasm_engine())
        i32 = wasmtime.ValType.i32()
        imports: list[Any] = []
        for imp in module.imports:
            if imp.name == "memory":
                self.memory = wasmtime.Memory(self.store, cast(wasmtime.MemoryType, imp.type))
                imports.append(self.memory)
            elif imp.name in ("opa_abort", "opa_println"):
                imports.append(wasmtime.Func(self.store, wasmtime.FuncType([i32], []), self._abort))
            else:  # opa_builtin0..4(builtin_id, ctx, args...)
                arity = int((imp.name or "").removeprefix("opa_builtin")) + 2
                imports.append(
                    wasmtime.Func(self.store, wasmtime.FuncType([i32] * arity, [i32]), self._builtin)
                )
        # Exports are looked up by name; OPA's Wasm ABI fixes what kind each one is.
        self.exports: Any = cast(Any, wasmtime.Instance(self.store, module, imports).exports(self.store))
        needed = self._json(self.exports["builtins"](self.store))
        if needed:
            raise PolicyError(
                f"the wasm engine cannot run builtins {', '.join(sorted(needed))}; use another engine"
            )
        self.entrypoints: dict[str, int] = self._json(self.exports["entrypoints"](self.store))
        self.data = self._parse(data)
        self.mark = self.exports["opa_heap_ptr_get"](self.store)
        self._eval_func = self.exports["opa_eval"]
        # wasmtime-py checks and converts every argument of every call in Python, which costs
        # four times the policy's own run: opa_eval's seven i32 arguments are laid out once.
        self._args = (_ffi.wasmtime_val_t * 7)()
        for arg in self._args:
            arg.kind = _ffi.WASMTIME_I32.value  # type: ignore[assignment]  # ctypes takes the int
        self._result = (_ffi.wasmtime_val_t * 1)()

    def _eval(self, entrypoint: int, length: int, heap: int) -> int:
        """opa_eval(0, entrypoint, data, input, input_len, heap_ptr, format 0 = JSON)."""
        for arg, value in zip(
            self._args, (0, entrypoint, self.data, self.mark, length, heap, 0), strict=True
        ):
            arg.of.i32 = value
        with _enter_wasm(self.store) as trap:
            error = _ffi.wasmtime_func_call(
                self.store._context(), byref(self._eval_func._func), self._args, 7, self._result, 1, trap
            )
            if error:
                raise wasmtime.WasmtimeError._from_ptr(error)
        return self._result[0].of.i32 & 0xFFFFFFFF

    def evaluate(self, entrypoint: int, text: bytes) -> Any:
        """The result set's one document, or None where undefined."""
        end = self.mark + len(text)
        short = end + _PAGE - self.memory.data_len(self.store)
        if short > 0:
            self.memory.grow(self.store, -(-short // _PAGE))
        self.memory.write(self.store, text, self.mark)
        out = self._eval(entrypoint, len(text), end)
        results = json.loads(self._string(out))
        return results[0].get("result") if results else None

    def evaluate_batch(self, rule: int, texts: Sequence[bytes]) -> list[Any]:
        """Each input's document through the path's wrapper rule, None where undefined."""
        found = dict(self.evaluate(rule, b'{"batch":[' + b",".join(texts) + b"]}") or ())
        return [found.get(n) for n in range(len(texts))]

    def _parse(self, text: bytes) -> int:
        addr = self.exports["opa_malloc"](self.store, len(text))
        self.memory.write(self.store, text, addr)
        parsed = self.exports["opa_json_parse"](self.store, addr, len(text))
        if not parsed:
            raise PolicyError("the wasm engine could not read the policy data")
        return parsed

    def _json(self, value_addr: int) -> Any:
        return json.loads(self._string(self.exports["opa_json_dump"](self.store, value_addr)))

    def _string(self, addr: int) -> bytes:
        """The NUL-terminated string at addr (JSON escapes every NUL inside a document)."""
        size = self.memory.data_len(self.store)
        step = 4096
        while True:
            chunk = self.memory.read(self.store, addr, min(addr + step, size))
            end = chunk.find(0)
            if end >= 0:
                return bytes(chunk[:end])
            if addr + step >= size:
                raise PolicyError("the wasm engine returned an unterminated string")
            step *= 8

    def _abort(self, addr: int) -> None:
        raise PolicyError(f"policy evaluation aborted: {self._string(addr).decode('utf-8', 'replace')[:500]}")

    def _builtin(self, *args: int) -> int:
        raise PolicyError("policy evaluation called a builtin the wasm engine does not provide")


class WasmEngine:
    """Evaluates documents of one policy revision compiled to WebAssembly; thread-safe.

    The module's heap is shared state, so one lock serialises evaluation (wasmtime releases
    the GIL while policy code runs, so two engines, e.g. two revisions, run in parallel). A
    path that is not an annotated entrypoint triggers one rebuild that adds it; a path that
    names no rule is undefined (None), as with OPA.
    """

    def __init__(self, policies: PolicySet, opa_binary: str) -> None:
        self._policies = policies
        self._opa = os.path.abspath(shutil.which(opa_binary) or opa_binary)  # builds run elsewhere
        self._lock = threading.Lock()
        self._data = input_json(policies.data).encode("utf-8")
        self._undefined: set[str] = set()
        self._paths: set[str] = set(policies.entrypoints)  # compiled in, each with its wrapper
        self._instance: _Instance | None = self._build(self._paths)

    @property
    def revision(self) -> str:
        return self._policies.revision

    def evaluate(self, path: str, input: Any) -> Any:
        return self.evaluate_many(path, [input])[0]

    def evaluate_many(self, path: str, inputs: Sequence[Any]) -> list[Any]:
        """Each input's document, in order; PolicyError where any one fails."""
        return self.evaluate_texts(path, [input_json(value).encode("utf-8") for value in inputs])

    def evaluate_texts(self, path: str, texts: Sequence[bytes]) -> list[Any]:
        """evaluate_many for inputs already written as JSON text (UTF-8, no NaN), so that a
        caller evaluating the same inputs on two revisions encodes them once."""
        check_path(path)
        with self._lock:
            instance = self._instance
            if instance is None:
                raise PolicyError("the wasm policy engine is closed")
            if path not in self._paths and path not in self._undefined:
                instance = self._add_entrypoint(instance, path)
            if path in self._undefined:
                return [None] * len(texts)
            try:
                if len(texts) == 1:
                    return [instance.evaluate(instance.entrypoints[path], texts[0])]
                rule = instance.entrypoints[_batch_rules(self._paths)[path]]
                return [
                    value
                    for start in range(0, len(texts), _PER_CALL)
                    for value in instance.evaluate_batch(rule, texts[start : start + _PER_CALL])
                ]
            except (wasmtime.WasmtimeError, wasmtime.Trap, PolicyError, ValueError) as exc:
                # A trap can leave the heap mid-way: start the next call on a fresh instance.
                self._instance = self._build(self._paths)
                raise PolicyError(f"evaluating {path}: {_trap_message(exc)}") from exc

    def close(self) -> None:
        with self._lock:
            self._instance = None

    def _add_entrypoint(self, instance: _Instance, path: str) -> _Instance:
        try:
            self._instance = self._build(self._paths | {path})
        except PolicyError as exc:
            if _NOT_A_RULE not in str(exc):
                raise
            self._undefined.add(path)
            return instance
        self._paths = self._paths | {path}
        return self._instance

    def _build(self, paths: set[str]) -> _Instance:
        module = _compile(self._opa, self._policies, tuple(sorted(paths)))
        try:
            return _Instance(module, self._data)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise PolicyError(f"loading the compiled policy set: {_trap_message(exc)}") from exc


_compiled: dict[tuple[str, str, tuple[str, ...]], wasmtime.Module] = {}
_compiled_lock = threading.Lock()
_COMPILED_KEPT = 16


def _compile(opa: str, policies: PolicySet, entrypoints: tuple[str, ...]) -> wasmtime.Module:
    """The compiled module, built once per process for a revision (its content hash) and
    entrypoints: a reload back to a revision, or many nodes in one process, reuse it."""
    key = (opa, policies.revision, entrypoints)
    with _compiled_lock:
        if key in _compiled:
            return _compiled[key]
    module = _build_module(opa, policies, entrypoints)
    with _compiled_lock:
        while len(_compiled) >= _COMPILED_KEPT:
            _compiled.pop(next(iter(_compiled)))
        _compiled[key] = module
    return module


def _build_module(opa: str, policies: PolicySet, paths: tuple[str, ...]) -> wasmtime.Module:
    """`opa build -t wasm` of the modules, data and batch wrappers, then wasmtime's compilation."""
    with tempfile.TemporaryDirectory(prefix="coopfed-wasm-") as tmp:
        root = Path(tmp, "policies")
        for name, source in policies.modules.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source, encoding="utf-8")
        root.mkdir(exist_ok=True)
        (root / "data.json").write_text(input_json(policies.data), encoding="utf-8")
        batch = Path(tmp, f"{_BATCH_PACKAGE}.rego")  # outside policies/: no name of theirs to clash with
        batch.write_text(_batch_module(set(paths)), encoding="utf-8")
        entrypoints = [*paths, *_batch_rules(set(paths)).values()]
        out = Path(tmp, "bundle.tar.gz")
        args = [
            opa,
            "build",
            "-t",
            "wasm",
            *(f"--entrypoint={e}" for e in entrypoints),
            "-o",
            out.name,
            root.name,  # relative, run in tmp: errors name "policies/x.rego", not the temp folder
            batch.name,
        ]
        try:
            done = subprocess.run(
                args, capture_output=True, text=True, timeout=_BUILD_TIMEOUT, check=False, cwd=tmp
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PolicyError(f"cannot run {opa} to compile the policy set: {exc}") from exc
        if done.returncode != 0:
            raise PolicyError(
                f"compiling the policy set to wasm: {(done.stderr or done.stdout).strip()[:1000]}"
            )
        with tarfile.open(out) as tar:
            member = tar.extractfile("/policy.wasm")
            wasm = member.read() if member else b""
    try:
        return wasmtime.Module(_wasm_engine(), wasm)
    except wasmtime.WasmtimeError as exc:
        raise PolicyError(f"loading the compiled policy set: {exc}") from exc


def _trap_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else exc.__class__.__name__
