"""A co-op at scale: N members with a week of half-hourly readings and a year of per-profile totals.

For each backend and at two sizes (N, and `--small` members so that growth is visible), a real
node process on a real database (PostgreSQL on a throwaway durable server this script starts,
or the SQLite file) and, over gRPC:

- ingest, two ways: every member's week by the co-op's bulk meter-data feed
  (MeterDataService.ImportReadings, many meters per message, from client threads), and the week
  before by each member's own UploadReadings for a sample of members; the baseline, in the same
  run, is the week written by binary COPY alone into a table shaped like `readings` (PostgreSQL),
  or by the store with no gRPC (SQLite);
- a year of aggregates fetched by a third party's grant (p50/p95), and a month's release;
- a consent change of a member with a year of readings (p50/p95), moving their year of totals;
- one member's export of a year of readings;
- the node's peak RSS.

    .venv/bin/python bench/scale.py --members 2000 --days 1          # while developing
    .venv/bin/python bench/scale.py                                  # 100,000 members, a week
    .venv/bin/python bench/scale.py --backend sqlite --members 20000
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import psycopg

from coopfed.federation.keys import KeyRing
from coopfed.node.client import bearer, grant_bearer
from coopfed.node.credentials import issue_board_token
from coopfed.node.meters import meter_hash
from coopfed.node.model import HALF_HOUR, ConsentLevel, ConsentSettings, Flow
from coopfed.node.operations import set_storage_url
from coopfed.node.runtime import init_node, open_node
from coopfed.node.settings import load_settings
from coopfed.node.storage.pgserver import PgServer, binaries
from coopfed.v1 import common_pb2, member_pb2, member_pb2_grpc, meterdata_pb2
from coopfed.v1 import governance_pb2 as gov_pb
from coopfed.v1 import governance_pb2_grpc as gov_grpc

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400
BULK_ROWS = 80_000  # readings per bulk-feed message (about 2.3 MB, under the node's 4 MB)
YEAR_MEMBERS = 40  # members with a year of readings: the year of totals, the consent changes, the export
TARGETS = {"ingest": 250_000, "year_p95_ms": 250, "consent_p95_ms": 200, "rss_mb": 500}
PROFILES = [
    ConsentSettings(level=ConsentLevel.GREEN),
    ConsentSettings(level=ConsentLevel.AMBER, choices={"demand": frozenset({Flow.THIRD_PARTY})}),
]


@dataclass
class Figures:
    members: int
    readings: int
    bulk_rate: float
    ingest_rate: float
    direct_rate: float
    year_ms: tuple[float, float]
    month_ms: float
    consent_ms: tuple[float, float]
    export_ms: float
    rss_mb: float


def week_end() -> int:
    return (int(time.time()) // DAY - 1) * DAY  # midnight UTC before yesterday's end: all in the past


def meter_id(i: int) -> str:
    return f"12{i:011d}"  # an MPAN's 13 digits


def kwh(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).gamma(2.0, 0.12, n)


# --- the node and its database -------------------------------------------------------------


@contextmanager
def database(backend: str, server: PgServer | None) -> Iterator[str]:
    """A new database's URL ("" for SQLite, which lives in the node's folder)."""
    if backend == "sqlite":
        yield ""
        return
    assert server is not None
    name = f"scale_{time.monotonic_ns()}"
    try:
        yield server.create_database(name)
    finally:
        server.sql(f"DROP DATABASE IF EXISTS {name}")


def seed(folder: Path, url: str, members: int, days: int) -> tuple[Path, list[str], list[str]]:
    """A node folder whose store holds `members` admitted members (two consent profiles) and
    YEAR_MEMBERS of them with a year of readings; their member tokens."""
    config = init_node(
        folder, node_id="bench", name="Bench", listen="127.0.0.1:0", policies=ROOT / "policies"
    )
    if url:
        set_storage_url(config, url)
    settings = load_settings(config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"})
    end = week_end()
    year = np.arange(end - 365 * DAY, end, HALF_HOUR, dtype=np.int64)
    ids = [f"m{i:06d}" for i in range(members)]
    with synchronous_commit_off(url), open_node(settings) as node:

        def create(i: int) -> None:
            meter = meter_hash(node.settings.base_dir, meter_id(i))
            node.store.create_member(ids[i], ids[i], PROFILES[i % 2], meter=meter, admitted_by="bench")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(members)))
        for i, member_id in enumerate(ids[:YEAR_MEMBERS]):
            held = year[: year.size - days * 48]  # the week itself is what the bench ingests
            node.store.put_readings(member_id, [("demand", held, kwh(held.size, i))])
        tokens = [node.credentials.issue_member_token(m) for m in ids]
    return config, ids, tokens


@contextmanager
def synchronous_commit_off(url: str) -> Iterator[None]:
    """Seeding's commits need not wait for the disk (what is measured afterwards does)."""
    if not url:
        yield
        return
    with psycopg.connect(url, autocommit=True) as conn:
        name = psycopg.sql.Identifier(conn.info.dbname)
        conn.execute(psycopg.sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(name))
        try:
            yield
        finally:
            conn.execute(psycopg.sql.SQL("ALTER DATABASE {} RESET synchronous_commit").format(name))


@contextmanager
def serving(config: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coopfed.node.cli", "node", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "COOPFED_LOG__LEVEL": "warning"},
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "serving on port" not in line:
            raise SystemExit(f"the node did not start: {line!r}")
        yield proc, f"127.0.0.1:{line.split()[-1]}"
    finally:
        proc.terminate()
        proc.wait(60)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- what is measured ------------------------------------------------------------------------


def ingest(channel: grpc.Channel, tokens: list[str], days: int, clients: int) -> tuple[float, int]:
    """The `days` before the last `days` of the sample's members, one UploadReadings stream per member
    (the year members, who hold those days, are left out)."""
    stub = member_pb2_grpc.MemberServiceStub(channel)
    periods = np.arange(week_end() - 2 * days * DAY, week_end() - days * DAY, HALF_HOUR, dtype=np.int64)

    def send(i: int) -> int:
        batch = member_pb2.ReadingBatch(dataset="demand", period_start_unix=periods, kwh=kwh(periods.size, i))
        return stub.UploadReadings(iter([batch]), metadata=bearer(tokens[i])).inserted

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        stored = sum(pool.map(send, range(YEAR_MEMBERS, len(tokens))))
    return time.perf_counter() - started, stored


def bulk(
    channel: grpc.Channel, board: tuple[tuple[str, str], ...], members: int, days: int, clients: int
) -> tuple[float, int]:
    """Every member's last `days` of readings by the bulk feed: `clients` streams, each message
    BULK_ROWS readings of whole meters, each message's meters in random order as an export may be.
    The messages are built and serialised before the clock starts: on this machine's two cores the
    exporter's work would otherwise be counted against the node and its database."""
    periods = np.arange(week_end() - days * DAY, week_end(), HALF_HOUR, dtype=np.int64)
    per = max(1, BULK_ROWS // periods.size)
    firsts = range(0, members, per)

    def message(first: int) -> bytes:
        n = min(per, members - first)
        meters = np.repeat([meter_id(i) for i in range(first, first + n)], periods.size)
        values = np.concatenate([kwh(periods.size, i) for i in range(first, first + n)])
        return meterdata_pb2.MeterReadings(
            dataset="demand", meter_ids=meters.tolist(), period_start_unix=np.tile(periods, n), kwh=values
        ).SerializeToString()

    lanes = [[message(first) for first in firsts[lane::clients]] for lane in range(clients)]
    send = channel.stream_unary(  # the stub's method, its messages already serialised
        "/coopfed.v1.MeterDataService/ImportReadings",
        request_serializer=None,
        response_deserializer=meterdata_pb2.ImportSummary.FromString,
    )

    def stream(lane: int) -> int:
        return send(iter(lanes[lane]), metadata=board, timeout=3600).inserted

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        stored = sum(pool.map(stream, range(clients)))
    return time.perf_counter() - started, stored


def copy_alone(url: str, members: int, days: int) -> float:
    """Seconds to write the same readings by binary COPY into a bare table shaped like readings,
    a transaction per member as the node's uploads are (PostgreSQL's floor for this ingest)."""
    periods = np.arange(week_end() - days * DAY, week_end(), HALF_HOUR, dtype=np.int64)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE copy_floor (member_key BIGINT, dataset_id BIGINT, period_start BIGINT, "
            "kwh DOUBLE PRECISION, PRIMARY KEY (member_key, dataset_id, period_start))"
        )
        started = time.perf_counter()
        for i in range(members):
            rows = np.empty(
                periods.size,
                [("f", ">i2"), ("n1", ">i4"), ("m", ">i8"), ("n2", ">i4"), ("d", ">i8"),
                 ("n3", ">i4"), ("p", ">i8"), ("n4", ">i4"), ("k", ">f8")],
            )  # fmt: skip
            rows["f"], rows["n1"], rows["n2"], rows["n3"], rows["n4"] = 4, 8, 8, 8, 8
            rows["m"], rows["d"], rows["p"], rows["k"] = i, 1, periods, kwh(periods.size, i)
            with conn.transaction(), conn.cursor().copy("COPY copy_floor FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + rows.tobytes() + b"\xff\xff")
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE copy_floor")
    return elapsed


def store_alone(config: Path, members: int, days: int) -> float:
    """SQLite: the same readings through the store with no gRPC (a fresh node)."""
    folder = config.parent.parent / "direct"
    direct, ids, _ = seed(folder, "", members, days)
    periods = np.arange(week_end() - days * DAY, week_end(), HALF_HOUR, dtype=np.int64)
    with open_node(load_settings(direct)) as node:
        started = time.perf_counter()
        for i, member_id in enumerate(ids):
            node.store.put_readings(member_id, [("demand", periods, kwh(periods.size, i))])
        return time.perf_counter() - started


def board_of(config: Path) -> tuple[tuple[str, str], ...]:
    settings = load_settings(config)
    return bearer(issue_board_token("bench", KeyRing.load_or_create(settings.keys_dir), "ada", 3600))


def grant(channel: grpc.Channel, config: Path, start: int, end: int) -> tuple:
    """A third party's approved grant for aggregates of [start, end), with its organisation's token."""
    board = board_of(config)
    governance, review = gov_grpc.GovernanceServiceStub(channel), gov_grpc.ReviewServiceStub(channel)
    org = governance.RegisterOrganisation(
        gov_pb.RegisterOrganisationRequest(
            name="Example University", type="university", contact="data@example.ac.uk",
            commitments=["not_for_profit"],
        )
    )  # fmt: skip
    review.VerifyOrganisation(
        gov_pb.VerifyOrganisationRequest(organisation_id=org.organisation_id, verified=True, note="bench"),
        metadata=board,
    )
    request = gov_pb.DataRequest(
        datasets=["demand"], fields=["kwh", "member_count"], granularity=gov_pb.GRANULARITY_AGGREGATE,
        period=common_pb2.Period(start_unix=start, end_unix=end), flow=common_pb2.FLOW_THIRD_PARTY,
        purpose="dpv:AcademicResearch", purpose_description="Evening peaks in community energy use, a study",
        commitments=["results_shared_with_members"],
    )  # fmt: skip
    status = governance.SubmitDataRequest(request, metadata=bearer(org.token))
    if status.state == gov_pb.REQUEST_STATE_AWAITING_REVIEW:
        decided = gov_pb.RecordDecisionRequest(
            request_id=status.request_id, outcome=gov_pb.OUTCOME_APPROVE, reason="bench"
        )
        review.RecordDecision(decided, metadata=board)
        status = governance.GetDecision(
            gov_pb.GetDecisionRequest(request_id=status.request_id), metadata=bearer(org.token)
        )
    if status.state != gov_pb.REQUEST_STATE_APPROVED:
        raise SystemExit(f"the bench's data request was refused: {list(status.policy_decision.reasons)}")
    return grant_bearer(status.grant.token, org.token)


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    found = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        found.append((time.perf_counter() - started) * 1000)
    return found


def p50_p95(ms: list[float]) -> tuple[float, float]:
    return statistics.median(ms), float(np.percentile(ms, 95))


def measure(
    backend: str, server: PgServer | None, members: int, days: int, clients: int, repeats: int, sample: int
) -> Figures:
    with tempfile.TemporaryDirectory(prefix="coopfed-scale-") as tmp, database(backend, server) as url:
        started = time.perf_counter()
        config, _, tokens = seed(Path(tmp) / "node", url, members, days)
        print(
            f"  [{backend}, {members:,} members: seeded in {time.perf_counter() - started:.0f} s]", flush=True
        )
        with serving(config) as (proc, address), grpc.insecure_channel(address) as channel:
            bulk_s, stored = bulk(channel, board_of(config), members, days, clients)
            elapsed, uploaded = ingest(channel, tokens[: YEAR_MEMBERS + sample], days, clients)
            print(
                f"  [bulk feed {stored / bulk_s:,.0f} readings/s, uploads {uploaded / elapsed:,.0f} "
                f"readings/s, node RSS so far {peak_rss_mb(proc.pid):.0f} MB]",
                flush=True,
            )
            end = week_end()
            year, month = (
                grant(channel, config, end - 365 * DAY, end),
                grant(channel, config, end - 30 * DAY, end),
            )
            data = gov_grpc.DataServiceStub(channel)
            year_ms = timed(lambda: list(data.FetchData(gov_pb.FetchDataRequest(), metadata=year)), repeats)
            month_ms = timed(lambda: list(data.FetchData(gov_pb.FetchDataRequest(), metadata=month)), repeats)
            stub = member_pb2_grpc.MemberServiceStub(channel)
            levels = iter(range(10**9))

            def change() -> None:  # a year member between the two profiles, a year of totals moved
                n = next(levels)
                level = (common_pb2.CONSENT_LEVEL_GREEN, common_pb2.CONSENT_LEVEL_RED)[n % 2]
                request = member_pb2.SetConsentRequest(settings=member_pb2.ConsentSettings(level=level))
                request.update_mask.paths.append("level")
                member = (n // 2) % (YEAR_MEMBERS // 2) * 2  # a green year member, and back
                stub.SetConsent(request, metadata=bearer(tokens[member]), timeout=60)

            consent_ms = timed(change, repeats * 2)
            export_ms = timed(
                lambda: list(stub.ExportMyData(member_pb2.ExportRequest(), metadata=bearer(tokens[1]))), 3
            )
            rss = peak_rss_mb(proc.pid)
        direct = copy_alone(url, members, days) if url else store_alone(config, members, days)
    assert stored == members * days * 48, stored
    assert uploaded == min(sample, members - YEAR_MEMBERS) * days * 48, uploaded
    return Figures(
        members, stored, stored / bulk_s, uploaded / elapsed, stored / direct, p50_p95(year_ms),
        statistics.median(month_ms), p50_p95(consent_ms), statistics.median(export_ms), rss,
    )  # fmt: skip


# --- the report ------------------------------------------------------------------------------


def report(backend: str, runs: list[Figures]) -> bool:
    baseline = "COPY alone" if backend == "postgresql" else "store alone"
    print(f"\n{backend}: " + " | ".join(f"{f.members:,} members, {f.readings:,} readings" for f in runs))
    rows = [
        ("ingest, bulk meter feed (readings/s)", [f"{f.bulk_rate:,.0f}" for f in runs],
         f">= {TARGETS['ingest']:,}"),
        ("ingest, per-member uploads (readings/s)", [f"{f.ingest_rate:,.0f}" for f in runs], ""),
        (f"ingest, {baseline} (readings/s)", [f"{f.direct_rate:,.0f}" for f in runs], ""),
        ("ratio bulk feed / " + baseline, [f"{f.bulk_rate / f.direct_rate:.2f}" for f in runs], ""),
        ("ratio uploads / " + baseline, [f"{f.ingest_rate / f.direct_rate:.2f}" for f in runs], ""),
        ("year of aggregates p50/p95 (ms)", [f"{f.year_ms[0]:.0f} / {f.year_ms[1]:.0f}" for f in runs],
         f"p95 < {TARGETS['year_p95_ms']}"),
        ("month released to a third party (ms)", [f"{f.month_ms:.0f}" for f in runs], ""),
        ("consent change p50/p95 (ms)", [f"{f.consent_ms[0]:.0f} / {f.consent_ms[1]:.0f}" for f in runs],
         f"p95 < {TARGETS['consent_p95_ms']}"),
        ("one member's export, a year (ms)", [f"{f.export_ms:.0f}" for f in runs], ""),
        ("node peak RSS (MB)", [f"{f.rss_mb:.0f}" for f in runs], f"< {TARGETS['rss_mb']}"),
    ]  # fmt: skip
    for label, values, target in rows:
        print(f"  {label:<40}" + "".join(f"{v:>18}" for v in values) + f"   {target}")
    big = runs[-1]
    checks = {
        "ingest by the bulk feed": big.bulk_rate >= TARGETS["ingest"],
        "year fetch": big.year_ms[1] < TARGETS["year_p95_ms"],
        "consent change": big.consent_ms[1] < TARGETS["consent_p95_ms"],
        "RSS": big.rss_mb < TARGETS["rss_mb"],
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'} {name} at {big.members:,} members")
    return all(checks.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=7, help="days of readings every member uploads")
    parser.add_argument("--small", type=int, default=1_000, help="the smaller co-op beside it (0: none)")
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="postgresql")
    parser.add_argument("--clients", type=int, default=4, help="client threads uploading")
    parser.add_argument("--sample", type=int, default=5_000, help="members timed uploading their own week")
    parser.add_argument("--repeats", type=int, default=20, help="fetches and consent changes timed")
    args = parser.parse_args()
    if args.members < YEAR_MEMBERS * 2 or (args.small and args.small < YEAR_MEMBERS * 2):
        parser.error(f"a co-op here has at least {YEAR_MEMBERS * 2} members")
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    server = None
    if "postgresql" in backends:
        found = binaries()
        if found is None:
            raise SystemExit("PostgreSQL's server is not installed (make install installs it)")
        server = PgServer(found, durable=True, settings={"shared_buffers": "256MB", "max_wal_size": "4GB"})
        server.start()
    ok = True
    try:
        for backend in backends:
            sizes = [n for n in (args.small, args.members) if n]
            runs = [
                measure(backend, server, n, args.days, args.clients, args.repeats, args.sample) for n in sizes
            ]
            ok = report(backend, runs) and ok
    finally:
        if server is not None:
            server.stop()
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
