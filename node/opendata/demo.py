"""The demo's flows 5 and 2: an open-data package published, and one member's benchmark."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from rich.console import Console

from coopfed.node.client import bearer
from coopfed.node.opendata.publish import Publication
from coopfed.v1 import benchmark_pb2, benchmark_pb2_grpc


@dataclass(frozen=True)
class FlowsShown:
    publication: Publication
    benchmark: benchmark_pb2.Comparison | None  # None where the group was too small to show


def show_open_data_and_benchmark(
    node_id: str,
    publish: Callable[[Path], Publication],
    address: str,
    token: str,
    folder: Path,
    console: Console,
) -> FlowsShown:
    """Publish the co-op's open data into `folder`/open-data and compare one member over gRPC."""
    console.print("\n[bold]Open data[/bold]")
    done = publish(folder / "open-data")
    console.print(
        f"  {node_id}: {done.cells_released:,} half-hours published from {done.contributors} members "
        f"({done.cells_suppressed:,} withheld, fewer than k) in {done.folder / 'datapackage.json'}",
        markup=False,
    )
    if not done.parquet:
        console.print("  Parquet not written: pyarrow is not installed", markup=False)
    console.print("\n[bold]A member compares their home[/bold]")
    with grpc.insecure_channel(address) as channel:
        stub = benchmark_pb2_grpc.BenchmarkServiceStub(channel)
        try:
            got = stub.Compare(benchmark_pb2.CompareRequest(), metadata=bearer(token))
        except grpc.RpcError as exc:
            console.print(f"  {exc.details()}", markup=False)
            return FlowsShown(done, None)
    console.print(f"  this {got.season}, among {got.similar_homes} homes of the co-op:", markup=False)
    for s in got.by_time_of_day:
        console.print(f"    {s.label}: {s.summary}", markup=False)
    console.print(f"  {got.suggestion}", markup=False)
    return FlowsShown(done, got)
