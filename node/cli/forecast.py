"""`coopfed forecast ...`: train, backtest and run the co-op's forecaster, with progress bars."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import arrow
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from coopfed.node.cli.common import NodeAction, bind_on_node
from coopfed.node.cli.output import Col, add_json_option, show
from coopfed.node.errors import UsageError
from coopfed.node.model import HALF_HOUR
from coopfed.node.runtime import Node
from coopfed.node.services import forecasting_of, model_exchange_of

ProgressFn = Callable[[str, int, int], None]
BACKTEST_HISTORY_DAYS = 21  # the forecaster's lags and training need three weeks before a test window
_DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def add_commands(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    train = commands.add_parser("train", help="train and sign a model (pooled or for model federation)")
    train.add_argument(
        "--mode",
        choices=["pooled", "federated"],
        default="federated",
        help="pooled: one model on this co-op's and peers' aggregates (under grants); federated: a "
        "local model, exchanged with aligned peers (default)",
    )
    train.add_argument("--no-exchange", action="store_true", help="federated: do not exchange with peers")
    backtest = commands.add_parser("backtest", help="score the models on the last weeks held")
    backtest.add_argument("--days", type=int, default=28, help="days held out at the end (default 28)")
    backtest.add_argument("--folds", type=int, default=1, help="retrain before each of this many blocks")
    backtest.add_argument("--with-peers", action="store_true", help="add peers' aggregates held under grants")
    backtest.add_argument("--chart", type=Path, help="PNG of the last week's day-ahead forecasts")
    predict = commands.add_parser("predict", help="forecast the next 48 h, keep it, show windows and nudges")
    predict.add_argument(
        "--at",
        help="origin, ISO 8601; a time without a UTC offset is on the co-op's clock ([place] tz). "
        "Default: now, or the end of the data held where that is earlier",
    )
    predict.add_argument("--mode", choices=["pooled", "federated"], help="default: the mode last trained")
    predict.add_argument("--chart", type=Path, help="PNG of the forecast with its windows shaded")
    add_json_option(
        commands.add_parser("models", help="the signed models held here, and whether they verify")
    )
    for sub in (train, backtest, predict, commands.choices["models"]):
        sub.add_argument(
            "--config",
            type=Path,
            default=Path("coopfed.toml"),
            help="the node's coopfed.toml (default ./coopfed.toml)",
        )
    for sub in (train, backtest):
        sub.add_argument("--rounds", type=int, default=0, help="boosting rounds (default: [forecast] rounds)")
        sub.add_argument("--device", type=_device, default=None, help="cpu or cuda[:n] (default: [forecast])")
    actions: dict[str, NodeAction] = {
        "train": _train,
        "backtest": _backtest,
        "predict": _predict,
        "models": _models,
    }
    bind_on_node(commands, actions, console)


def _device(text: str) -> str:
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"device must be cpu or cuda[:n], not {text!r}")
    return text


@contextlib.contextmanager
def progress_bars(console: Console) -> Iterator[ProgressFn]:
    """A rich progress bar per stage, fed by the forecaster's (stage, done, total) callbacks."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bars:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(escape(stage), total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update


def _fit_args(args: argparse.Namespace, progress: ProgressFn) -> dict:
    return {"rounds": args.rounds or None, "device": args.device or None, "progress": progress}


def _held_out(days: int, first: int, end: int, console: Console) -> int:
    """The start of the test window: `days` before the end, or fewer where the data is shorter
    (the models need three weeks of history before the window, and a day to forecast)."""
    room = (end - first) // (48 * HALF_HOUR) - BACKTEST_HISTORY_DAYS
    if room < 2:
        raise UsageError(
            f"a backtest needs {BACKTEST_HISTORY_DAYS} days of history and two days to test; "
            f"{(end - first) / 86_400:.0f} days are held",
            code="cli.backtest",
        )
    if days > room:
        _say(console, f"testing on the last {room} days, not {days}: the models need "
             f"{BACKTEST_HISTORY_DAYS} days of history before them")  # fmt: skip
        days = room
    return end - days * 48 * HALF_HOUR


def _say(console: Console, text: str) -> None:
    console.print(text, soft_wrap=True, highlight=False, markup=False, emoji=False)


def _train(args: argparse.Namespace, node: Node, console: Console) -> int:
    forecasting = forecasting_of(node)
    data, models = forecasting.data, forecasting.models
    problems: dict[str, str] = {}
    with progress_bars(console) as progress:
        if args.mode == "pooled":
            purpose = data.forecast_policy().purpose
            peers, problems = asyncio.run(data.peer_aggregates(purpose, progress))
            trained = models.train_pooled_model(peers, **_fit_args(args, progress))
        else:
            trained = models.train_local_model(**_fit_args(args, progress))
    meta = trained.artifact.metadata
    _say(
        console,
        f"signed {meta.kind} model v{meta.version} of {meta.coop_id}: {meta.training_rows} rows from "
        f"{', '.join(meta.contributors)}; {trained.file.path}",
    )
    if args.mode == "federated" and not args.no_exchange:
        report = asyncio.run(model_exchange_of(node).exchange())
        for peer, version in report.published.items():
            _say(console, f"  {peer} holds our v{version}")
        for peer, version in report.fetched.items():
            _say(console, f"  kept {peer}'s model v{version} (signature verified)")
        for peer in report.untrained:
            _say(console, f"  {peer} has trained no model yet")
        problems |= report.failures
    for peer, why in problems.items():
        _say(console, f"  {peer}: {why}")
    return 0 if not problems else 1  # the model is kept; exchanging it with some peers failed


def _when(unix: int, tz: str) -> str:
    return arrow.get(unix).to(tz).format("ddd D MMM HH:mm")


def _at(text: str | None, tz: str) -> int | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"--at {text!r}: {exc}", code="cli.at") from exc
    unix = int((at if at.tzinfo else at.replace(tzinfo=ZoneInfo(tz))).timestamp())
    return unix - unix % HALF_HOUR


def _predict(args: argparse.Namespace, node: Node, console: Console) -> int:
    from coopfed.forecaster import Window, plot_forecast
    from coopfed.node.forecast.forecasting import forecast_frame, nudge_texts

    tz = node.settings.place.tz
    forecast, ensemble = forecasting_of(node).make_forecast(origin=_at(args.at, tz), mode=args.mode)
    models = ", ".join(f"{m.trained_by} v{m.version} {m.kind} ({m.weight:.0%})" for m in forecast.models)
    title = f"forecast #{forecast.sequence} of {forecast.coop_id} from {_when(forecast.origin, tz)} ({tz})"
    table = Table("window", "from", "to", "nudge", title=escape(title))
    texts = nudge_texts(forecast.windows, tz, now=forecast.origin)
    for w, text in zip(forecast.windows, texts, strict=True):
        table.add_row(w.kind, _when(w.start, tz), _when(w.end, tz), escape(text))
    console.print(table)
    _say(console, f"{forecast.mode} models: {models}")
    _say(console, f"peak: demand above {forecast.peak_threshold_kwh:.1f} kWh per half-hour "
         f"(percentile {forecast.peak_percentile:g} of the last 28 days)")  # fmt: skip
    for peer, why in ensemble.skipped.items():
        _say(console, f"  left out {peer}'s model: {why}")
    if args.chart:
        found = [Window(w.kind, w.start, w.end, w.daylight) for w in forecast.windows]
        plot_forecast(forecast_frame(forecast), args.chart, found=found, title=title, tz=tz)
        _say(console, f"chart written to {args.chart}")
    return 0


def _backtest(args: argparse.Namespace, node: Node, console: Console) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from coopfed.forecaster import backtest, plot_backtest

    forecasting = forecasting_of(node)
    data = forecasting.data
    policy = data.forecast_policy()
    with progress_bars(console) as progress:
        coops = [data.own_aggregates().coop]
        if args.with_peers:
            peers, _ = asyncio.run(data.peer_aggregates(policy.purpose, progress))
            coops += [p.coop for p in peers]
        end = int(coops[0].aggregates.index[-1]) + HALF_HOUR
        first = max(int(c.aggregates.index[0]) for c in coops)
        start = _held_out(args.days, first, end, console)
        # Backtest models are scored and thrown away: signed with throwaway keys, never kept.
        keys = {c.coop_id: Ed25519PrivateKey.generate() for c in coops}
        try:
            report = backtest(
                coops, keys, test_start=start, folds=args.folds, peak_percentile=policy.peak_percentile,
                **forecasting.models.fit_settings(_fit_args(args, progress)),
            )  # fmt: skip
        except ValueError as exc:
            raise UsageError(f"cannot backtest: {exc}", code="cli.backtest") from exc
    for coop in ["all", *sorted(c.coop_id for c in coops)] if len(coops) > 1 else ["all"]:
        _say(console, report.to_table(coop=coop))
    if args.chart:
        plot_backtest(report.predictions, node.node_id, args.chart, tz=node.settings.place.tz)
        _say(console, f"chart written to {args.chart}")
    return 0


def _models(args: argparse.Namespace, node: Node, console: Console) -> int:
    from coopfed.forecaster import ArtifactError, ModelArtifact
    from coopfed.node.forecast.models import trusted_keys, verifying_key

    store = node.forecast.store
    peers = sorted(node.federation.state.peers()) if node.federation else []
    records = []
    for coop in [node.node_id, *peers]:
        for kind in ("local", "pooled"):
            for file in store.model_files(coop, kind):
                row: dict[str, Any] = {"trainer": coop, "kind": kind, "version": file.version}
                row["path"] = str(file.path)
                try:
                    art = ModelArtifact.load(file.path)
                    verifying_key(art, trusted_keys(node.keys, node.federation, node.node_id, coop))
                    meta = art.metadata
                    at = datetime.fromisoformat(meta.trained_at)
                    row |= {"rows": meta.training_rows, "trained_at": at, "signature": "ok"}
                except (ArtifactError, OSError, ValueError) as exc:
                    row |= {"signature": f"refused: {exc}"}
                records.append(row)
    columns = [Col("trainer", "trainer"), Col("kind", "kind"), Col("version", "version"), Col("rows", "rows")]
    columns += [Col("trained_at", "trained at"), Col("signature", "signature")]
    show(console, records, columns, as_json=args.json, empty="no models yet: run `coopfed forecast train`")
    return 0
