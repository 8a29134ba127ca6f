"""The README, executed: every ```sh block of README.md and of the guides it links, in order.

The blocks run as a reader would run them after `make install`: one shell session (variables,
the activated virtualenv and the working folder carry from block to block) in a fresh temporary
folder holding only the checkout's `.venv` and `.tools` (links to them), so nothing reads the
source tree and `coopfed` is the installed console script, on PATH only once the README's own
`. .venv/bin/activate` has run. Nodes are real, on loopback. What the harness does for the reader:

- ports: every `127.0.0.1:PORT` in the docs is given a free port of its own (with PORT + 1 free
  too: a node's peer port), the same in every block, so runs never collide;
- `coopfed node serve ... &` runs in the background with its output in a log file, and the block
  goes on once the node printed "serving on port" (as a reader waits for that line); every node
  started is stopped with SIGTERM at the end;
- ids in capitals (REQUEST_ID, GRANT_ID, ORG_ID, DECISION_ID, SEQ:HASH) are what the reader copies
  from earlier output: when the command runs, the harness puts in the last one printed so far;
- `make TARGET` cannot recurse into the test suite (`make test` runs this test): it runs as
  `make -n TARGET` in the checkout, which proves the target exists and shows its commands.

Every block runs even after one fails (so one report shows them all); any failure fails the test
with the block's file, line, text and output.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = re.compile(r"`((?:[\w.-]+/)*[\w.-]+\.md)`|\]\(((?:[\w.-]+/)*[\w.-]+\.md)\)")
BLOCK = re.compile(r"^([ \t]*)```sh\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
LOOPBACK = re.compile(r"127\.0\.0\.1:(\d{4,5})")
SERVE = re.compile(r"^(\s*coopfed node serve\b[^&\n]*)&[ \t]*(#.*)?$", re.MULTILINE)
MAKE = re.compile(r"^(\s*)make ([\w -]+?)(\s*#.*)?$", re.MULTILINE)
# grep -P patterns (\\K starts the id) for ids in capitals that a reader copies from earlier output.
PLACEHOLDERS = {
    "REQUEST_ID": r"\breq-[0-9a-f]{16}\b",
    "GRANT_ID": r"\bgrant(?:ed)? \K(?:[0-9a-f]{32}|[0-9a-f-]{36})\b",
    "ORG_ID": r"registered as \Korg-[0-9a-f]+\b",
    "DECISION_ID": r"decision \K[0-9a-f-]{36}\b",
    "SEQ:HASH": r"head \K\d+:[0-9a-f]{64}\b",
}
BLOCK_TIMEOUT = 300

# Shell functions the rewritten blocks call; $HARNESS is the harness's own folder.
PRELUDE = r"""
set -o pipefail
coopfed_background() {  # LOG CMD...: start a node, wait for its "serving on port" line
    local log="$1"; shift
    "$@" >"$log" 2>&1 &
    echo $! >>"$HARNESS/pids"
    for _ in $(seq 600); do
        grep -q "serving on port" "$log" && return 0
        kill -0 $! 2>/dev/null || { cat "$log"; return 1; }
        sleep 0.1
    done
    cat "$log"; return 1
}
save_state() {  # exported variables (the activated virtualenv) and the working folder
    declare -px | grep -v -E ' (BASHOPTS|BASH_VERSINFO|EUID|PPID|SHELLOPTS|UID)='
    echo "cd $(printf %q "$PWD")"
}
"""


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    text: str


def documents() -> list[Path]:
    """README.md, then each guide it names that has shell blocks, in the order named."""
    readme = ROOT / "README.md"
    docs = [readme]
    for match in GUIDE.finditer(readme.read_text()):
        path = ROOT / (match.group(1) or match.group(2))
        if path.is_file() and path not in docs and BLOCK.search(path.read_text()):
            docs.append(path)
    return docs


def blocks() -> list[Block]:
    found = []
    for doc in documents():
        text = doc.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            code = textwrap.dedent(match.group(2)) if match.group(1) else match.group(2)
            found.append(Block(str(doc.relative_to(ROOT)), line, code))
    return found


def free_port_pair() -> int:
    """A port p with p + 1 free as well (a node's public and peer ports)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port < 65535:
                try:
                    with socket.socket() as t:
                        t.bind(("127.0.0.1", port + 1))
                        return port
                except OSError:
                    continue


def rewrite(block: str, ports: dict[str, int], logs: Path) -> str:
    """The block as the harness runs it: ports, backgrounded nodes, make dry runs, ids."""
    text = LOOPBACK.sub(lambda m: f"127.0.0.1:{ports.setdefault(m.group(1), free_port_pair())}", block)
    text = SERVE.sub(
        lambda m: f"coopfed_background {logs / f'node-{len(list(logs.iterdir()))}.log'} {m.group(1).strip()}",
        text,
    )
    text = MAKE.sub(lambda m: f"{m.group(1)}make -n -C {shlex.quote(str(ROOT))} {m.group(2)}", text)
    for name, pattern in PLACEHOLDERS.items():
        text = text.replace(name, f"$(grep -oP '{pattern}' \"$HARNESS/output\" | tail -1)")
    return text


def run_all(workdir: Path) -> list[str]:
    harness = workdir.parent / "harness"
    logs = harness / "logs"
    logs.mkdir(parents=True)
    for tool in (".venv", ".tools"):
        if (ROOT / tool).exists():
            (workdir / tool).symlink_to((ROOT / tool).resolve())
    state = harness / "state.sh"
    state.write_text(f"cd {shlex.quote(str(workdir))}\n")
    env = {
        "HOME": str(harness),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HARNESS": str(harness),
        "COLUMNS": "120",
        "LANG": "C.UTF-8",
        "COOPFED_STORAGE__SYNCHRONOUS": "NORMAL",
    }
    ports: dict[str, int] = {}
    output, failures = harness / "output", []
    for block in blocks():
        text = rewrite(block.text, ports, logs)
        # The session's state is kept even when the block fails, so later blocks still run.
        script = f"{PRELUDE}\n. {state}\ntrap 'save_state >{state}' EXIT\nset -e\n{text}\n"
        before = output.stat().st_size if output.exists() else 0
        with output.open("a") as sink:  # the session's whole output, which ids are read from
            try:
                rc = subprocess.run(
                    ["bash", "-c", script],
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    timeout=BLOCK_TIMEOUT,
                ).returncode
            except subprocess.TimeoutExpired:
                rc = -1
        with output.open() as read:
            read.seek(before)
            out = read.read() + (f"\ntimed out after {BLOCK_TIMEOUT} s" if rc == -1 else "")
        if rc != 0 or "Traceback (most recent call last)" in out:
            failures.append(f"{block.doc}:{block.line} exited {rc}\n--- block\n{block.text}--- output\n{out}")
    return failures


def stop_nodes(harness: Path) -> None:
    pids = harness / "pids"
    for pid in pids.read_text().split() if pids.exists() else ():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGTERM)


@pytest.mark.integration
@pytest.mark.timeout(900)  # the whole walk-through: demo, federation, forecasts, ledger, board
@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "coopfed").exists(), reason="needs `make install`")
def test_every_shell_block_of_the_readme_runs(tmp_path):
    workdir = tmp_path / "reader"
    workdir.mkdir()
    try:
        failures = run_all(workdir)
    finally:
        stop_nodes(tmp_path / "harness")
    assert not failures, f"{len(failures)} README block(s) failed:\n\n" + "\n\n".join(failures)


def test_the_harness_rewrites_ports_nodes_make_and_ids(tmp_path):
    ports: dict[str, int] = {}
    block = (
        "coopfed node init --listen 127.0.0.1:50051\n"
        "coopfed node serve --config mycoop/coopfed.toml &    # wait for it\n"
        "make run    # the demo\n"
        "coopfed request fetch GRANT_ID --node 127.0.0.1:50051\n"
    )
    text = rewrite(block, ports, tmp_path)
    port = ports["50051"]
    assert text.count(f"127.0.0.1:{port}") == 2
    assert "50051" not in text
    assert "coopfed_background " in text
    assert "&" not in text
    assert f"make -n -C {ROOT} run" in text
    assert "fetch $(grep -oP " in text
    assert blocks()[0].doc == "README.md"
