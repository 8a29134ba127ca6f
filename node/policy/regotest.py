"""`coopfed policy test` and `check`: the Rego suites on real OPA and on the embedded engine; the linters.

OPA runs the `*_test.rego` suites (with coverage). The embedded engine runs each suite in a
child process, because rego-cpp can crash on constructs OPA accepts (`with input as` over a
rule that uses another rule does); a crashed suite is reported, not hidden. Either way every
case table in the suites (a list of objects with an `input`) is replayed through both
engines on the entrypoints of the package under test, and any difference fails the run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coopfed.node.policy.errors import PolicyError
from coopfed.node.policy.loader import PolicySet, load_policies
from coopfed.node.policy.replay import make_replayer

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)", re.MULTILINE)
_TOOL_TIMEOUT = 300


def find_tool(name: str, explicit: str | None = None) -> str | None:
    """`explicit` where given (None if it is not there), else $COOPFED_<NAME>, else
    .tools/bin/<name> (as the Makefile installs it), else PATH."""
    if explicit:
        return str(Path(explicit).resolve()) if os.access(explicit, os.X_OK) else None
    for candidate in (os.environ.get(f"COOPFED_{name.upper()}"), str(Path(".tools/bin") / name)):
        if candidate and os.access(candidate, os.X_OK):
            return str(Path(candidate).resolve())
    return shutil.which(name)


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=_TOOL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PolicyError(f"cannot run {args[0]}: {exc}") from exc


# --- check --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    output: str
    skipped: str = ""  # why the check did not run ("" where it ran)


def run_checks(policy_dir: Path, opa: str, regal: str | None) -> list[CheckResult]:
    """`opa check --strict`, `opa fmt --diff --fail` and `regal lint` (where Regal is installed)."""
    results = []
    for name, args in (
        ("opa check --strict", [opa, "check", "--strict", str(policy_dir)]),
        ("opa fmt --diff", [opa, "fmt", "--diff", "--fail", str(policy_dir)]),
    ):
        done = _run(args)
        results.append(CheckResult(name, done.returncode == 0, (done.stdout + done.stderr).strip()))
    if regal is None:
        why = "the Regal linter is not installed (make regal; or set COOPFED_REGAL to its binary)"
        results.append(CheckResult("regal lint", False, "", skipped=why))
    else:
        config = _regal_config(policy_dir)
        args = [regal, "lint", "--format", "json", *(["--config-file", str(config)] if config else [])]
        done = _run([*args, str(policy_dir)])
        results.append(CheckResult("regal lint", done.returncode == 0, _regal_findings(done)))
    return results


def _regal_findings(done: subprocess.CompletedProcess[str]) -> str:
    """One line per violation: where, which rule, what it says."""
    try:
        violations = json.loads(done.stdout)["violations"] or []
    except (ValueError, KeyError, TypeError):
        return (done.stdout + done.stderr).strip()
    return "\n".join(
        f"{v['location']['file']}:{v['location']['row']}: {v['title']} ({v['category']}): {v['description']}"
        for v in violations
    )


def _regal_config(policy_dir: Path) -> Path | None:
    """The Regal rules that travel with the policies (`.regal/config.yaml`), else the nearest above."""
    for folder in [policy_dir.resolve(), *policy_dir.resolve().parents, Path.cwd(), *Path.cwd().parents]:
        if (folder / ".regal" / "config.yaml").is_file():
            return folder / ".regal" / "config.yaml"
    return None


# --- test ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestOutcome:
    package: str  # e.g. coopfed.consent_test
    name: str
    opa: str  # pass, fail, error, skip
    embedded: str  # pass, fail, or why it did not run
    message: str = ""


@dataclass(frozen=True)
class CaseDifference:
    package: str
    case: str
    entrypoint: str
    opa: Any
    embedded: Any  # the in-process engine's answer
    engine: str = "embedded"  # which in-process engine gave it (embedded or wasm)


@dataclass
class TestReport:
    outcomes: list[TestOutcome] = field(default_factory=list)
    coverage: dict[str, float] = field(default_factory=dict)  # policy file -> percent
    uncovered: dict[str, list[int]] = field(default_factory=dict)  # policy file -> line numbers
    total_coverage: float = 0.0
    cases_replayed: int = 0
    differences: list[CaseDifference] = field(default_factory=list)
    suites_crashed: dict[str, str] = field(default_factory=dict)  # test module -> why

    @property
    def opa_failures(self) -> list[TestOutcome]:
        return [o for o in self.outcomes if o.opa in ("fail", "error")]

    @property
    def disagreements(self) -> list[TestOutcome]:
        return [o for o in self.outcomes if o.embedded in ("pass", "fail") and o.embedded != o.opa]

    def ok(self, threshold: float) -> bool:
        return not (self.opa_failures or self.disagreements or self.differences) and (
            self.total_coverage >= threshold
        )


def run_tests(policy_dir: Path, opa: str) -> TestReport:
    report = TestReport()
    opa_results = _opa_tests(policy_dir, opa)
    _coverage(policy_dir, opa, report)
    modules = _test_modules(policy_dir)
    embedded: dict[tuple[str, str], str] = {}
    for module in modules:
        embedded.update(_embedded_suite(policy_dir, module, report))
    for (package, name), (state, message) in sorted(opa_results.items()):
        report.outcomes.append(
            TestOutcome(package, name, state, embedded.get((package, name), "not run"), message)
        )
    _replay_cases(policy_dir, opa, sorted({_package(m.read_text("utf-8")) for m in modules}), report)
    return report


def _opa_tests(policy_dir: Path, opa: str) -> dict[tuple[str, str], tuple[str, str]]:
    done = _run([opa, "test", "--format", "json", str(policy_dir)])
    try:
        results = json.loads(done.stdout or "[]")
    except ValueError as exc:
        raise PolicyError(f"opa test gave no results: {done.stderr.strip()[:1000]}") from exc
    out = {}
    for r in results:
        package = r["package"].removeprefix("data.")
        state = (
            "error" if r.get("error") else "fail" if r.get("fail") else "skip" if r.get("skip") else "pass"
        )
        message = json.dumps(r["error"]) if r.get("error") else r.get("output", "") or ""
        out[(package, r["name"])] = (state, str(message)[:500])
    return out


def _coverage(policy_dir: Path, opa: str, report: TestReport) -> None:
    done = _run([opa, "test", "--coverage", "--format", "json", str(policy_dir)])
    try:
        files = json.loads(done.stdout)["files"]
    except (ValueError, KeyError) as exc:
        if done.returncode != 0 and "FAIL" in done.stdout:
            return  # OPA reports no coverage while a test fails; the failure is reported already
        raise PolicyError(f"opa test --coverage gave no report: {done.stderr.strip()[:1000]}") from exc
    covered = missed = 0
    for name, info in sorted(files.items()):
        if name.endswith("_test.rego"):
            continue
        lines = [r["start"]["row"] for r in info.get("not_covered", [])]
        report.coverage[name] = float(info.get("coverage", 0.0))
        report.uncovered[name] = sorted(set(lines))
        covered += info.get("covered_lines", 0)
        missed += info.get("not_covered_lines", 0)
    report.total_coverage = 100.0 * covered / (covered + missed) if covered + missed else 100.0


def _test_modules(policy_dir: Path) -> list[Path]:
    return sorted(policy_dir.rglob("*_test.rego"))


def _package(source: str) -> str:
    match = _PACKAGE.search(source)
    if match is None:
        raise PolicyError("a test module without a package")
    return match.group(1)


def _embedded_suite(policy_dir: Path, module: Path, report: TestReport) -> dict[tuple[str, str], str]:
    """Run one test module on rego-cpp in a child process, which a crash cannot take down with us."""
    args = [sys.executable, "-m", "coopfed.node.policy.regotest", str(policy_dir), str(module)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=_TOOL_TIMEOUT, check=False)
    package = _package(module.read_text("utf-8"))
    names = _TEST_RULE.findall(module.read_text("utf-8"))
    if done.returncode != 0:
        why = f"signal {-done.returncode}" if done.returncode < 0 else done.stderr.strip()[-300:]
        report.suites_crashed[module.relative_to(policy_dir).as_posix()] = why
        return {(package, n): f"crashed ({why})" for n in names}
    verdicts = json.loads(done.stdout)
    return {(package, n): verdicts.get(n, "not run") for n in names}


def _suite_worker(policy_dir: Path, module: Path) -> dict[str, str]:
    """In the child: compile the policies with one test module and evaluate each test rule."""
    import regopy

    interpreter = regopy.Interpreter()
    policies = load_policies(policy_dir)
    interpreter.add_data_json(json.dumps(policies.data))
    for name, source in sorted(policies.modules.items()):
        interpreter.add_module(name, source)
    source = module.read_text("utf-8")
    interpreter.add_module(module.name, source)
    package = _package(source)
    verdicts = {}
    for name in dict.fromkeys(_TEST_RULE.findall(source)):
        output = interpreter.query(f"data.{package}.{name}")
        if not output.ok():  # str(output) would describe it, but can crash on these errors
            verdicts[name] = "error (rego-cpp could not compile or evaluate the suite)"
            continue
        passed = output.results and output.results[0].expressions == [True]
        verdicts[name] = "pass" if passed else "fail"
    return verdicts


def _tables(value: Any, trail: str = "") -> list[tuple[str, Any]]:
    """(name, input) of every case in every list of objects that all carry an `input`."""
    if isinstance(value, list) and value and all(isinstance(c, dict) and "input" in c for c in value):
        return [(f"{trail}[{i}] {c.get('name', '')}".strip(), c["input"]) for i, c in enumerate(value)]
    if isinstance(value, dict):
        return [case for key, item in value.items() for case in _tables(item, f"{trail}.{key}".lstrip("."))]
    return []


def _tested_entrypoints(policies: PolicySet, test_package: str) -> list[str]:
    target = test_package.removesuffix("_test").replace(".", "/")
    return [e for e in policies.entrypoints if e.rsplit("/", 1)[0] == target or e == target]


def _replay_cases(policy_dir: Path, opa: str, packages: list[str], report: TestReport) -> None:
    """Evaluate every case-table input on OPA and on both in-process engines (embedded, wasm),
    each entrypoint's table as one batch; compare."""
    query = "x := {" + ", ".join(f'"{p}": data.{p}' for p in packages) + "}"
    done = _run([opa, "eval", "--format", "json", "-d", str(policy_dir), query])
    try:
        documents = json.loads(done.stdout)["result"][0]["bindings"]["x"]
    except (ValueError, KeyError, IndexError) as exc:
        raise PolicyError(f"cannot read the suites' case tables: {done.stderr.strip()[:1000]}") from exc
    replayers = [make_replayer(policy_dir, kind, opa) for kind in ("opa", "embedded", "wasm")]
    real, *in_process = replayers
    try:
        for package in packages:
            cases = _tables(
                {k: v for k, v in documents.get(package, {}).items() if not k.startswith("test_")}
            )
            inputs = [value for _, value in cases]
            for entrypoint in _tested_entrypoints(real.policies, package):
                opa_answers = real.evaluate_many(entrypoint, inputs)
                report.cases_replayed += len(cases)
                for other in in_process:
                    answers = zip(opa_answers, other.evaluate_many(entrypoint, inputs), strict=True)
                    for (name, _), (by_opa, by_other) in zip(cases, answers, strict=True):
                        if by_opa != by_other:
                            report.differences.append(
                                CaseDifference(package, name, entrypoint, by_opa, by_other, other.name)
                            )
    finally:
        for replayer in replayers:
            replayer.close()


if __name__ == "__main__":  # the child process of _embedded_suite
    print(json.dumps(_suite_worker(Path(sys.argv[1]), Path(sys.argv[2]))))
