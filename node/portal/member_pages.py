"""The member's own pages: consent, who used their data, their energy, their statement, how their
home compares, their data."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from typing import Any

import arrow
import jwt
import numpy as np
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coopfed.node import members
from coopfed.node.errors import FailedPrecondition, InvalidArgument, NotFound
from coopfed.node.ledger.statement import statement
from coopfed.node.ledger.terms import Terms
from coopfed.node.model import DATASETS, ConsentLevel, Flow
from coopfed.node.portal import charts, words
from coopfed.node.portal.accounts import Account
from coopfed.node.portal.app import call, page, portal, render, text
from coopfed.node.release.service import BAND_HOURS
from coopfed.node.storage import Home, Store
from coopfed.node.storage.base import HEATING, HOME_TYPES, INSTALLED, INSTALLED_RANGE, InvalidData
from coopfed.node.storage.ledger import LedgerStore

YEAR = 365 * charts.DAY


@page()
async def consent(request: Request, account: Account, form: FormData | None = None) -> Response:
    parts = portal(request).parts
    data = parts.policy.data
    saved = None
    if form is not None:
        saved = await call(parts.set_consent, account.member_id, consent_change(form, data), "")
    member, history = await call(_consent_state, parts.store, account.member_id)
    return render(
        request, "consent.html", settings=member.settings, history=history[::-1], saved=saved,
        levels=words.LEVELS, flows=words.flows(data), datasets=words.datasets(data),
        personas=words.personas(data), welcome=request.query_params.get("welcome"),
    )  # fmt: skip


def _consent_state(store: Store, member_id: str) -> tuple[Any, list[Any]]:
    return store.get_member(member_id), store.consent_history(member_id)


def consent_change(form: FormData, data: words.Data) -> members.ConsentChange:
    """The form's choice as a whole new setting: a persona, or a level (with choices at amber)."""
    nudges = bool(text(form, "nudges"))
    persona = text(form, "persona")
    if persona:
        if persona not in data["consent"]["personas"]:
            raise InvalidArgument(
                "Choose one of the co-op's personas.", code="portal.persona", field="persona"
            )
        return members.ConsentChange(persona=persona, nudges=nudges, replace=True)
    try:
        level = ConsentLevel(text(form, "level"))
    except ValueError:
        raise InvalidArgument("Choose green, amber or red.", code="portal.level", field="level") from None
    choices = None
    if level is ConsentLevel.AMBER:
        picked = set(form.getlist("choice"))
        choices = {
            ds: frozenset(f for f in Flow if f is not Flow.INTERNAL and f"{ds}:{f.value}" in picked)
            for ds in DATASETS
        }
    return members.ConsentChange(level=level, choices=choices, nudges=nudges, replace=True)


@page()
async def receipt(request: Request, account: Account) -> Response:
    record_id = request.path_params["record_id"]
    history = await call(portal(request).parts.store.consent_history, account.member_id)
    record = next((r for r in history if r.record_id == record_id and r.receipt), None)
    if record is None:
        raise NotFound("There is no receipt with that number among yours.", code="portal.receipt")
    body = jwt.decode(record.receipt, options={"verify_signature": False})["receipt"]
    document = {"receipt": body, "signed_receipt": record.receipt, "how_to_check": words.RECEIPT_NOTE}
    return Response(
        json.dumps(document, indent=2), media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="consent-receipt-{record_id}.json"'},
    )  # fmt: skip


@page()
async def access(request: Request, account: Account) -> Response:
    parts = portal(request).parts
    uses = await call(words.data_uses, parts.governance, parts.policy.data, account.member_id)
    return render(request, "access.html", uses=uses)


@page()
async def energy(request: Request, account: Account, form: FormData | None = None) -> Response:
    p = portal(request)
    if form is not None:
        change = members.ConsentChange(nudges=bool(text(form, "nudges")))
        await call(p.parts.set_consent, account.member_id, change, "")
    view = await call(energy_view, p.parts.store, account.member_id, p.tz)
    if view["nudges_on"]:
        view["nudges"] = await call(words.nudges, p.parts.forecast, p.parts.settings.place.tz)
    return render(request, "energy.html", **view)


def energy_view(store: Store, member_id: str, tz: str) -> dict[str, Any]:
    """The member's last day, week and month as charts, and whether they want nudges."""
    now = store.newest_period() or int(time.time())
    readings = {b.dataset: (b.periods, b.kwh) for b in _year(store, member_id, now)}
    today = charts.arrow.get(now).to(tz).floor("day")
    charts_ = []
    for title, days in (("The last 7 days", 7), ("The last 30 days", 30)):
        start = int(today.shift(days=-(days - 1)).timestamp())
        labels = [today.shift(days=-(days - 1 - i)).format("D MMM") for i in range(days)]
        series = [charts.Series(ds, charts.daily(p, k, start, days, tz)) for ds, (p, k) in readings.items()]
        charts_.append((title, charts.bar_chart(f"{title}: kWh per day", labels, series), labels, series))
    profile = [charts.Series(ds, charts.time_of_day(p, k, tz)) for ds, (p, k) in readings.items()]
    day_chart = charts.bar_chart("An average day: kWh per half-hour", charts.clock_labels(), profile)
    member = store.get_member(member_id)
    return {
        "charts": charts_, "day_chart": day_chart, "profile": profile, "clock": charts.clock_labels(),
        "has_readings": bool(readings), "nudges_on": member.settings.nudges, "nudges": [],
    }  # fmt: skip


def _year(store: Store, member_id: str, now: int) -> list[Any]:
    """A year of readings per dataset, joined from the store's chunks."""
    found: dict[str, list[Any]] = {}
    for batch in store.iter_readings(member_id, start=now - YEAR + charts.HALF_HOUR, end=now + 1):
        found.setdefault(batch.dataset, []).append(batch)
    return [
        type(parts[0])(ds, np.concatenate([b.periods for b in parts]), np.concatenate([b.kwh for b in parts]))
        for ds, parts in found.items()
    ]


@page()
async def statement_page(request: Request, account: Account) -> Response:
    p = portal(request)
    month = request.query_params.get("month", "")
    view = await call(statement_view, p.parts.ledger, p.parts.terms, account.member_id, p.tz, month)
    return render(request, "statement.html", **view)


def statement_view(
    ledger: LedgerStore, terms: Callable[[int, int], Terms], member_id: str, tz: str, month: str
) -> dict[str, Any]:
    """The member's ledger statement for a calendar month on the co-op's clock (default: this one)."""
    this_month = arrow.now(tz).floor("month")
    try:
        first = arrow.get(month, "YYYY-MM", tzinfo=tz) if month else this_month
    except (arrow.parser.ParserError, ValueError):
        raise InvalidArgument("month: expected a month such as 2026-11", code="portal.month") from None
    start, end = int(first.timestamp()), int(first.shift(months=1).timestamp())
    made = statement(ledger, start, end, member_id, terms(start, end))
    return {
        "month": first.format("MMMM YYYY"),
        "lines": made.lines(),
        "previous": first.shift(months=-1).format("YYYY-MM"),
        "next": first.shift(months=1).format("YYYY-MM") if first < this_month else "",
    }


@page()
async def compare(request: Request, account: Account, form: FormData | None = None) -> Response:
    parts = portal(request).parts
    saved = False
    if form is not None:
        home = home_from_form(form)
        await call(parts.store.set_home, account.member_id, home if home.declared() else None)
        saved = True
    homes = await call(parts.store.homes, [account.member_id])
    report, refused = None, ""
    try:
        report = await call(parts.benchmark, account.member_id)
    except FailedPrecondition as e:
        refused = e.message[0].upper() + e.message[1:] + "."
        if e.code == "benchmark.group_too_small":
            k = parts.policy.data["coop"]["k_min"]
            refused = (
                "There are too few homes like yours to compare with yet. So that no one's use can be "
                f"picked out, the co-op shows a comparison only among at least {k} "
                "similar homes whose owners agreed to it. Declaring less about your home widens the group."
            )
    return render(
        request, "compare.html", home=homes.get(account.member_id, Home()), saved=saved, report=report,
        refused=refused, band_hours=BAND_HOURS, heating=HEATING, home_types=HOME_TYPES,
        installed=INSTALLED,
    )  # fmt: skip


def home_from_form(form: FormData) -> Home:
    """The declared home; blank answers stay undeclared. InvalidData for a value out of range."""
    size = text(form, "household_size").strip()
    if size and not size.isdigit():
        raise InvalidArgument("Household size: a whole number from 1 to 12.", code="portal.home")
    yes_no = {"yes": True, "no": False}
    try:
        return Home(
            household_size=int(size) if size else None,
            heating=text(form, "heating") or None,
            has_pv=yes_no.get(text(form, "has_pv")),
            has_battery=yes_no.get(text(form, "has_battery")),
            home_type=text(form, "home_type") or None,
            **{field: _number(form, field) for field in INSTALLED},
        )
    except InvalidData as e:
        raise InvalidArgument(f"{str(e)[0].upper()}{str(e)[1:]}.", code="portal.home") from None


def _number(form: FormData, field: str) -> float | None:
    value = text(form, field).strip()
    try:
        return float(value) if value else None
    except ValueError:
        raise InvalidData(f"{INSTALLED[field]}: {INSTALLED_RANGE}") from None


@page()
async def data(request: Request, account: Account) -> Response:
    return render(request, "data.html")


@page()
async def export(request: Request, account: Account) -> Response:
    p = portal(request)
    kind = request.path_params["kind"]
    member, history, chunks = await call(p.parts.export, account.member_id)
    if kind == "csv":
        body = await call(_csv, chunks, p.tz)
        return _download(body, "text/csv", "my-readings.csv")
    document = {
        "member": {
            "id": member.member_id, "name": member.display_name, "joined": member.created_at.isoformat()
        },
        "consent": json.loads(member.settings.to_json()),
        "consent_history": [
            {"at": r.at.isoformat(), "changes": list(r.changes), "terms_version": r.terms_version}
            for r in history
        ],
        "readings": await call(lambda: [
            {"dataset": b.dataset, "period_start": b.periods.tolist(), "kwh": b.kwh.tolist()} for b in chunks
        ]),
    }  # fmt: skip
    return _download(json.dumps(document), "application/json", "my-data.json")


def _csv(chunks: Any, tz: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["dataset", "half-hour starting (local time)", "kWh"])
    for batch in chunks:
        starts = [charts.arrow.get(int(t)).to(tz).format("YYYY-MM-DD HH:mm ZZ") for t in batch.periods]
        writer.writerows(zip([batch.dataset] * len(starts), starts, batch.kwh.tolist(), strict=True))
    return out.getvalue()


def _download(body: str, media_type: str, name: str) -> Response:
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@page()
async def erase(request: Request, account: Account, form: FormData) -> Response:
    p = portal(request)
    if text(form, "confirm").strip().casefold() != "erase":
        raise InvalidArgument(
            "Nothing was erased: type the word erase to confirm.", code="portal.erase_confirm"
        )
    erased = await call(p.parts.erase, account.member_id, account.member_id)
    await call(p.accounts.remove, account.member_id)  # its sessions go with it
    request.state.account = None
    return render(request, "message.html", title="Your data has been erased", message=(
        f"We erased {erased:,} readings and your sign-in. The record of your consent choices stays, "
        "without your readings, so the co-op can show what you had agreed to before today."
    ))  # fmt: skip


routes = [
    Route("/consent", consent, methods=["GET", "POST"]),
    Route("/consent/receipts/{record_id:int}", receipt),
    Route("/access", access),
    Route("/energy", energy, methods=["GET", "POST"]),
    Route("/statement", statement_page),
    Route("/compare", compare, methods=["GET", "POST"]),
    Route("/data", data),
    Route("/data/export.{kind:str}", export),
    Route("/data/erase", erase, methods=["POST"]),
]
