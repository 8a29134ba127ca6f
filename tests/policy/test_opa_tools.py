"""OPA's own tools pass on policies/: the Rego tests, strict checks and formatting."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def _opa(opa_binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([opa_binary, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    "args",
    [
        ("test",),
        ("check", "--strict"),
        ("fmt", "--diff", "--fail"),
    ],
    ids=["test", "check-strict", "fmt"],
)
def test_opa_tool_passes(opa_binary: str, policy_dir: Path, args: tuple[str, ...]) -> None:
    result = _opa(opa_binary, *args, str(policy_dir))
    assert result.returncode == 0, result.stdout + result.stderr


def test_opa_test_runs_the_consent_suite(opa_binary: str, policy_dir: Path) -> None:
    result = _opa(opa_binary, "test", "-v", str(policy_dir))
    assert "data.coopfed.consent_test.test_decision_table: PASS" in result.stdout, result.stdout


def test_opa_test_fails_when_the_policy_is_wrong(opa_binary: str, policy_dir: Path, tmp_path: Path) -> None:
    """The Rego suite can fail: flip red's one allowance and it must."""
    broken = tmp_path / "policies"
    (broken / "consent").mkdir(parents=True)
    (broken / "data.json").write_text((policy_dir / "data.json").read_text())
    for name in ("consent.rego", "consent_test.rego"):
        text = (policy_dir / "consent" / name).read_text()
        if name == "consent.rego":
            assert '\t_level == "red"\n\tinput.flow != "internal"' in text
            text = text.replace('\t_level == "red"\n\tinput.flow != "internal"', '\t_level == "red"')
        (broken / "consent" / name).write_text(text)
    result = _opa(opa_binary, "test", str(broken))
    assert result.returncode != 0
    assert "test_decision_table" in result.stdout
