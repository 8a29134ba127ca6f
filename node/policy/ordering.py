"""No rollback of signed policy: which signed bundle may follow the one a node accepted last.

A node remembers, durably and before it runs a bundle, the highest serial it accepted, when
that bundle was signed, and every revision it ever ran (in `policy-floor.json`, 0600, written
atomically). A later bundle must carry a higher serial and be signed no earlier than that one,
so a genuine but older bundle, or a replayed one, is refused. Going back on purpose re-issues
the old content under a new, higher serial with `rollback: true` in the manifest, signed by
more board keys than a normal change (`[policy] rollback_signatures_required`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from coopfed.federation.keys import write_private
from coopfed.node.policy.bundle import BundleError, BundleInfo

FLOOR_FILE = "policy-floor.json"
CLOCK_SKEW = 300  # seconds a signature's iat may lie ahead of this node's clock


@dataclass(frozen=True)
class Floor:
    """The latest bundle a node accepted, and the serial each revision it ran first came with."""

    serial: int
    issued_at: int
    revision: str
    seen: dict[str, int] = field(default_factory=dict)


def raised(floor: Floor | None, info: BundleInfo) -> Floor:
    """The floor once `info` runs."""
    seen = dict(floor.seen) if floor else {}
    seen.setdefault(info.revision, info.serial)
    return Floor(info.serial, info.issued_at, info.revision, seen)


def check_order(floor: Floor | None, info: BundleInfo, rollback_threshold: int) -> None:
    """Raise BundleError, with the reason in plain words, where `info` may not follow `floor`."""
    if info.issued_at > time.time() + CLOCK_SKEW:
        raise BundleError(f"the bundle is signed in the future ({_when(info.issued_at)}); check the clocks")
    if info.rollback and len(info.signers) < rollback_threshold:
        raise BundleError(
            f"a rollback bundle needs signatures from {rollback_threshold} board keys; "
            f"this one has {len(info.signers)}"
        )
    if floor is None or (info.serial, info.revision) == (floor.serial, floor.revision):
        return  # the first bundle this node sees, or the one it runs (a restart)
    if info.serial <= floor.serial:
        raise BundleError(
            f"bundle serial {info.serial} is not newer than serial {floor.serial} already accepted "
            f"(revision {floor.revision}); an older signed bundle cannot replace a newer one"
        )
    if info.issued_at < floor.issued_at:
        raise BundleError(
            f"the bundle was signed {_when(info.issued_at)}, before the running bundle "
            f"({_when(floor.issued_at)}): a replayed bundle is refused"
        )
    first = floor.seen.get(info.revision)
    if first is not None and info.revision != floor.revision and not info.rollback:
        raise BundleError(
            f"the bundle re-issues revision {info.revision}, first accepted as serial {first}; "
            f"going back needs a bundle marked rollback, signed by {rollback_threshold} board keys"
        )


def load_floor(folder: Path) -> Floor | None:
    """The floor the node saved, None where it never accepted a bundle; BundleError if unreadable."""
    path = folder / FLOOR_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Floor(int(raw["serial"]), int(raw["issued_at"]), str(raw["revision"]), dict(raw["seen"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # Never start afresh from a damaged floor: that would accept any older bundle.
        raise BundleError(f"cannot read {path} ({exc}); restore it from a backup") from exc


def save_floor(folder: Path, floor: Floor) -> None:
    """Write the floor atomically, readable by the owner only."""
    write_private(folder / FLOOR_FILE, json.dumps(asdict(floor), indent=2, sort_keys=True).encode("utf-8"))


def _when(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%d %B %Y at %H:%M UTC")
