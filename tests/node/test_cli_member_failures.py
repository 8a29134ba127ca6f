"""Every failure a member can hit prints one plain line and its documented exit code, never a traceback.

Each case runs the installed CLI as a subprocess, as a member would."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import running_node


@contextlib.contextmanager
def not_grpc() -> Iterator[str]:
    """A port that accepts connections and hangs up: something that is not a coopfed node."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = server.accept()
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()


def closed_port() -> str:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    with running_node(folder / "n", env={"COOPFED_NODE__PLAINTEXT": "false"}) as (node, address):
        yield address, node.settings.path(node.settings.tls.cert)


@pytest.fixture(scope="module")
def other_cert(tmp_path_factory) -> Iterator[Path]:
    """Another node's certificate: trusting it does not make this node trusted."""
    folder = tmp_path_factory.mktemp("other")
    with running_node(folder / "n", node_id="coop-z", env={"COOPFED_NODE__PLAINTEXT": "false"}) as (node, _):
        yield node.settings.path(node.settings.tls.cert)


def _saved(folder: Path, node: str, **trust: str) -> Path:
    path = folder / "saved.json"
    path.write_text(json.dumps({"node": node, "subject": "m-1", "token": "t", **trust}))
    return path


REGISTER = "register --name A --credentials {dir}/new.json --node "
SAVED = " --credentials {saved}"
# case: (arguments after `coopfed member`, exit code, words the message must hold)
CASES = {
    "node not running": (REGISTER + "{closed}", 3, "cannot reach the node"),
    "wrong port": (REGISTER + "{not_grpc}", 3, "cannot reach the node"),
    "plaintext to a TLS node": (REGISTER + "{tls}", 3, "cannot reach the node"),
    "wrong CA": (REGISTER + "{tls} --ca {other_cert}", 3, "cannot reach the node"),
    "wrong fingerprint": (REGISTER + "{tls} --fingerprint AB:CD", 3, "not the fingerprint given"),
    "fingerprint of no node": (REGISTER + "{closed} --fingerprint AB:CD", 3, "cannot reach the node"),
    "missing member.json": ("consent --credentials {dir}/none.json", 2, "no credentials in"),
    "corrupt member.json": ("consent --credentials {corrupt}", 2, "cannot read credentials"),
    "EOF at a prompt": ("erase" + SAVED, 1, "no answer given"),
    "CSV path missing": ("upload {dir}/none.csv" + SAVED, 2, "no such file"),
    "CSV path is a folder": ("upload {dir}" + SAVED, 2, "is a directory"),
    "bad time zone": ("upload {csv} --tz Mars/Base" + SAVED, 2, "not a time zone"),
    "an unknown option": ("consent --colour", 2, "unrecognized arguments"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_failure_is_one_plain_line_and_its_exit_code(case, tmp_path, tls_node, other_cert):
    args, code, words = CASES[case]
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    csv = tmp_path / "r.csv"
    csv.write_text("dataset,period_start,kwh\ndemand,2024-01-10T10:00,1\n")
    with not_grpc() as port:
        saved = _saved(tmp_path, tls_node[0], ca=str(tls_node[1]))
        places = {"dir": tmp_path, "not_grpc": port, "closed": closed_port(), "corrupt": corrupt, "csv": csv}
        places |= {"saved": saved, "tls": tls_node[0], "other_cert": other_cert}
        run = subprocess.run(
            [sys.executable, "-m", "coopfed.node.cli", "member", *args.format(**places).split()],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            cwd=tmp_path,
        )
    out = run.stdout + run.stderr
    assert run.returncode == code, out
    assert words in out
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip() and not line.startswith("usage: ")]
    assert len(lines) == 1, out  # one line (argparse adds its usage line before it)
