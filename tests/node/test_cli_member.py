"""The member commands of the CLI against a real node: register, consent, upload, receipts, export, erase."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest

from coopfed.federation.tls import cert_fingerprint
from coopfed.node import cli

from .conftest import running_node

START = (int(time.time()) // 1800 - 200) * 1800  # a half-hour well in the past


@pytest.fixture
def tls_node(tmp_path):
    with running_node(tmp_path / "tls", env={"COOPFED_NODE__PLAINTEXT": "false"}) as running:
        yield running


class Cli:
    """Runs `coopfed member ACTION ... --credentials FILE` in-process and returns its output."""

    def __init__(self, capsys: pytest.CaptureFixture[str], creds: Path) -> None:
        self.capsys, self.creds = capsys, creds

    def code(self, *args: str) -> tuple[int, str]:
        code = cli.main(["member", *args, "--credentials", str(self.creds)])
        return code, self.capsys.readouterr().out

    def __call__(self, *args: str) -> str:
        code, out = self.code(*args)
        assert code == 0, out
        return out

    def json(self, *args: str):
        return json.loads(self(*args, "--json"))


@pytest.fixture
def member(node, tmp_path, capsys) -> Cli:
    run = Cli(capsys, tmp_path / "member.json")
    assert "registered as m-" in run("register", "--node", node[1], "--name", "Ada")
    return run


def _csv(path: Path, rows: list[str], header: str = "dataset,period_start,kwh") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_member_walks_through_the_cli(member, tmp_path):
    assert (member.creds.stat().st_mode & 0o777) == 0o600
    assert "community_first" in member("personas")
    assert {p["name"] for p in member.json("personas")} >= {"community_first", "privacy_first"}
    changed = member(
        "set-consent", "--level", "amber", "--allow", "demand=coop_to_coop,open_data", "--nudges"
    )
    assert "level: red -> amber" in changed
    assert member.json("consent") == {
        "level": "amber",
        "persona": "",
        "choices": {"demand": ["coop_to_coop", "open_data"]},
        "nudges": True,
    }
    shown = member("consent")
    assert "shared with aligned co-ops, open data" in shown
    assert "CONSENT_LEVEL" not in shown

    rows = [
        f"demand,{datetime.fromtimestamp(START + 1800 * i, UTC):%Y-%m-%dT%H:%MZ},{0.1 * i:.1f}"
        for i in range(5)
    ]
    assert "stored 5 new readings" in member("upload", str(_csv(tmp_path / "r.csv", rows)))
    exported = tmp_path / "export.json"
    member("export", "--out", str(exported))
    assert (exported.stat().st_mode & 0o777) == 0o600
    chunks = json.loads(exported.read_text())
    assert chunks[0]["profile"]["displayName"] == "Ada"
    assert [float(k) for k in chunks[1]["readings"]["kwh"]] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert "no one outside the co-op" in member("access")
    assert member.json("access") == []

    assert member.code("erase", "--yes")[0] == 0
    assert not member.creds.exists()


def test_register_keeps_an_existing_credential_unless_forced(node, member):
    before = member.creds.read_text()
    code, out = member.code("register", "--node", node[1], "--name", "Bo")
    assert code == 2
    assert "--force" in out
    assert member.creds.read_text() == before
    assert "registered as" in member("register", "--node", node[1], "--name", "Bo", "--force")
    assert json.loads(member.creds.read_text())["subject"] != json.loads(before)["subject"]


def test_register_refuses_plaintext_off_this_machine(tmp_path, capsys):
    run = Cli(capsys, tmp_path / "member.json")
    code, out = run.code("register", "--node", "192.0.2.10:50051", "--name", "Ada")
    assert code == 2
    assert "--ca" in out
    assert not run.creds.exists()


@pytest.mark.parametrize("trust", ["ca", "fingerprint"])
def test_register_against_a_tls_node_saves_how_to_trust_it(tls_node, tmp_path, capsys, trust):
    node, address = tls_node
    cert = node.settings.path(node.settings.tls.cert)
    option = ["--ca", str(cert)] if trust == "ca" else ["--fingerprint", cert_fingerprint(cert.read_bytes())]
    run = Cli(capsys, tmp_path / "member.json")
    run("register", "--node", address, "--name", "Ada", *option)
    saved = json.loads(run.creds.read_text())
    assert saved["node"] == address
    assert saved["ca"] or saved["fingerprint"]
    # Later commands reach the node the same way, with nothing but the credential file.
    assert run.json("consent")["level"] == "red"


def test_upload_keeps_offsets_and_reads_bare_times_on_the_coop_clock(node, member, tmp_path):
    # 12:00+02:00 is 10:00 UTC; 10:30 without an offset in January is 10:30 in London (UTC+0);
    # 12:00 without an offset in July is 11:00 UTC (British Summer Time).
    rows = [
        "demand,2024-01-10T12:00+02:00,1.0",
        "demand,2024-01-10T10:30,2.0",
        "generation,2024-07-10 12:00,3.0",
    ]
    assert "stored 3 new readings" in member("upload", str(_csv(tmp_path / "t.csv", rows)))
    subject = json.loads(member.creds.read_text())["subject"]
    held = {
        (b.dataset, int(p)): float(k)
        for b in node[0].store.iter_readings(subject)
        for p, k in zip(b.periods, b.kwh, strict=True)
    }
    at = lambda text: int(datetime.fromisoformat(text).timestamp())  # noqa: E731
    assert held == {
        ("demand", at("2024-01-10T10:00+00:00")): 1.0,
        ("demand", at("2024-01-10T10:30+00:00")): 2.0,
        ("generation", at("2024-07-10T11:00+00:00")): 3.0,
    }


H = "dataset,period_start,kwh\n"
OK = "demand,2024-01-10T10:00Z,1\n"
BAD_CSV = [
    ("demand,2024-01-10T10:00Z,0.5\n", "line 1: the first line must be the header"),
    ("dataset;period_start;kwh\ndemand;2024-01-10T10:00Z;0.5\n", "line 1: columns are separated by ';'"),
    (H + OK + "demand,soon,0.5\n", "line 3, column period_start: 'soon' is not a time"),
    (H + "demand,2024-01-10T10:00Z,0,5\n", "line 2: 4 columns where 3 are expected"),
    (H + "demand,2024-01-10T10:00Z,lots\n", "line 2, column kwh: 'lots' is not a number"),
    (H + "gas,2024-01-10T10:00Z,1\n", "line 2, column dataset: 'gas' is not a dataset"),
    (
        H + OK + "demand,2024-01-10T10:10Z,1\n",
        "line 3, column period_start: 2024-01-10T10:10Z is not the start",
    ),
    (H + OK + "generation,2024-01-10T10:00Z,-1\n", "line 3, column kwh: -1 is negative"),
    (
        H + OK + "demand,2024-01-10T10:00+00:00,2\n",
        "line 3, column period_start: 2024-01-10T10:00+00:00 appears",
    ),
    (H + "demand,2024-10-27T01:30,1\n", "line 2, column period_start: 2024-10-27T01:30 happens twice"),
    (H + "demand,2024-03-31T01:30,1\n", "2024-03-31T01:30 does not exist on the Europe/London clock"),
    (
        H + "demand,2099-01-01T00:00Z,1\n",
        "line 2, column period_start: 2099-01-01T00:00Z is a half-hour that has",
    ),
    ("\xff\xfe", "not UTF-8 text"),
    ("", "the file is empty"),
]


@pytest.mark.parametrize(("content", "expected"), BAD_CSV)
def test_a_bad_csv_is_refused_naming_line_and_column_and_nothing_is_sent(
    node, member, tmp_path, content, expected
):
    path = tmp_path / "bad.csv"
    path.write_bytes(content.encode("latin-1") if content.startswith("\xff") else content.encode())
    code, out = member.code("upload", str(path))
    assert code == 2, out
    assert expected in out
    assert "nothing was sent" in out
    subject = json.loads(member.creds.read_text())["subject"]
    assert list(node[0].store.iter_readings(subject)) == []


def test_a_spreadsheet_byte_order_mark_is_read(member, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffdataset,period_start,kwh\r\ndemand,2024-01-10T10:00Z,0.5\r\n".encode())
    assert "stored 1 new readings" in member("upload", str(path))


def test_set_consent_changes_only_what_it_is_given(member):
    member("set-consent", "--level", "amber", "--allow", "demand=coop_to_coop", "--nudges")
    member("set-consent", "--allow", "generation=open_data")  # nudges and demand stay as they were
    assert member.json("consent") == {
        "level": "amber",
        "persona": "",
        "choices": {"demand": ["coop_to_coop"], "generation": ["open_data"]},
        "nudges": True,
    }
    member("set-consent", "--no-nudges")
    assert member.json("consent")["nudges"] is False
    assert member.json("consent")["choices"]["demand"] == ["coop_to_coop"]
    member("set-consent", "--nudges")  # alone
    assert member.json("consent")["nudges"] is True
    member("set-consent", "--allow", "demand=")  # no flows: demand shared with no one
    assert member.json("consent")["choices"] == {"generation": ["open_data"]}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--level", "red", "--allow", "demand=open_data"], "at red it would mean nothing"),
        (["--persona", "community_first", "--level", "green"], "a persona sets the level"),
        (["--allow", "demand=opendata"], "'opendata' is not a flow to choose; flows: member_to_member"),
        ([], "nothing to change"),
    ],
)
def test_set_consent_refuses_what_cannot_mean_anything(member, args, expected):
    code, out = member.code("set-consent", *args)
    assert code == 2
    assert expected in out
    assert "Enum" not in out
    assert member.json("consent")["level"] == "red"


def test_choices_are_refused_by_the_node_unless_amber(member):
    member("set-consent", "--level", "green")
    code, out = member.code("set-consent", "--allow", "demand=open_data")
    assert code == 1
    assert "apply only at amber" in out
    assert member.json("consent") == {"level": "green", "persona": "", "choices": {}, "nudges": False}


@pytest.mark.parametrize("persona", ["privacy_first", "community_first", "generation_sharer"])
def test_the_summary_after_choosing_a_persona_is_what_consent_then_shows(member, persona):
    out = member("set-consent", "--persona", persona)
    summary = out.split("your consent is now:\n", 1)[1].rsplit("receipt ", 1)[0]
    assert summary == member("consent")
    assert f"persona: {persona}" in out.replace("none -> ", "")
    shown = member.json("consent")
    assert shown["persona"] == persona
    assert shown["level"] == ("red" if persona == "privacy_first" else "amber")


def test_the_member_keeps_every_consent_receipt(node, member, tmp_path):
    member("set-consent", "--level", "amber", "--allow", "demand=open_data")
    member("set-consent", "--persona", "research_friendly")
    member("set-consent", "--level", "red", "--reason", "moving house")
    receipts = member.json("receipts")
    assert len(receipts) == 3
    assert receipts[-1]["changes"][0] == "level: amber -> red"
    saved = tmp_path / "mine"
    assert "saved 3 receipts" in member("receipts", "--save", str(saved))
    files = sorted(saved.iterdir())
    assert [f.name for f in files] == [f"receipt-{r['receipt_id']}.jwt" for r in receipts]
    assert all((f.stat().st_mode & 0o777) == 0o600 for f in files)
    subject = json.loads(member.creds.read_text())["subject"]
    token = files[-1].read_text().strip()
    kid = jwt.get_unverified_header(token)["kid"]
    body = jwt.decode(token, key=node[0].keys.jwks()[kid], algorithms=["EdDSA"], audience=subject)
    assert body["receipt"]["withdrawalReason"] == "moving house"
    assert body["receipt"]["consentReceiptID"] == receipts[-1]["receipt_id"]
    exported = tmp_path / "export.json"
    member("export", "--out", str(exported))
    history = json.loads(exported.read_text())[0]["profile"]["consentHistory"]
    assert [h["receipt"] for h in history if h.get("receipt")] == [r["receipt"] for r in receipts]
    table = member("receipts")
    assert "level: amber -> red" in table
    assert "moving house" not in table
