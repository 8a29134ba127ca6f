"""Signed OPA bundles: build (.manifest, policies, data), sign (.signatures.json), verify and load.

The signature format is OPA's: `.signatures.json` holds JWTs whose payload lists every file
with its SHA-256 (`{"files": [{"name", "hash", "algorithm"}], "scope", "iat", "iss"}`). OPA
hashes data.json and .manifest over a canonical form of the JSON (see `opa_file_hash`), every
other file over its bytes. OPA's own verifier accepts exactly one JWT; a coopfed node accepts
several and requires valid signatures from at least M distinct board keys.

The manifest's `metadata.coopfed` carries a `serial`, a counter that orders a co-op's bundles
(each new bundle takes the next number), and `rollback`, true only on a bundle that re-issues
old content on purpose; see ordering.py for what a node accepts. `ballots` lists the members'
ballots whose passed changes the bundle implements (`{"ballot_id", "tally_digest"}`): a node
refuses a bundle that changes ballot-governed data any other way (coopfed.node.ballots.gate).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from coopfed.federation import jws
from coopfed.federation.errors import BadAlgorithm, BadHeader, TokenError, UnknownKey
from coopfed.node.policy.archive import MANIFEST, SIGNATURES, BundleError, read_archive, write_archive
from coopfed.node.policy.boardkeys import ALGORITHM, BoardKeySet, BoardSigningKey
from coopfed.node.policy.loader import PolicySet, legacy_revision, load_policies

DEFAULT_SCOPE = "coopfed-policy"
HASH_ALGORITHM = "SHA-256"
MAX_SIGNATURES = 32
_HEX64 = re.compile(r"[0-9a-f]{64}")


# --- OPA's file hashes ------------------------------------------------------------------


class _Number(str):
    """A JSON number kept as written: OPA decodes numbers as json.Number and hashes their text."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _go_string(text: str) -> str:
    """A string as Go's encoding/json writes it with HTML escaping off."""
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # lone surrogates -> U+FFFD
    encoded = json.dumps(text, ensure_ascii=False)
    return encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _canonical(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            out.append("," if i else "")
            out.append(_go_string(key) + ":")
            _canonical(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            out.append("," if i else "")
            _canonical(item, out)
        out.append("]")
    elif isinstance(value, _Number):
        out.append(str(value))
    elif isinstance(value, str):
        out.append(_go_string(value))
    else:  # True, False, None
        out.append(json.dumps(value))


def is_structured(name: str) -> bool:
    """The files OPA hashes as JSON structure rather than bytes."""
    return PurePosixPath(name).name in ("data.json", MANIFEST)


def opa_file_hash(name: str, data: bytes) -> str:
    """The SHA-256 OPA computes for a bundle file (hex)."""
    if not is_structured(name):
        return hashlib.sha256(data).hexdigest()
    try:
        value = json.loads(
            data.decode("utf-8"), parse_float=_Number, parse_int=_Number, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{name} is not JSON: {exc}") from exc
    out: list[str] = []
    _canonical(value, out)
    return hashlib.sha256("".join(out).encode("utf-8")).hexdigest()


# --- building and signing ---------------------------------------------------------------


@dataclass(frozen=True)
class BundleInfo:
    """What a bundle holds and who signed it (kids of valid board signatures)."""

    path: Path
    revision: str
    roots: tuple[str, ...]
    files: dict[str, str]  # name -> sha256
    signers: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    serial: int = 0  # the manifest's counter: a later bundle has a higher one
    rollback: bool = False  # the manifest says it re-issues old content on purpose
    issued_at: int = 0  # the newest `iat` among the valid board signatures (unix seconds)
    ballots: tuple[tuple[str, str], ...] = ()  # (ballot id, tally digest) of the ballots it implements


def bundle_files(policy_dir: str | Path) -> dict[str, bytes]:
    """The files a bundle of `policy_dir` carries: Rego modules (not tests) and data.json files."""
    root = Path(policy_dir)
    policies = load_policies(root)  # refuses what the node would refuse
    files = {name: (root / name).read_bytes() for name in policies.modules}
    for path in sorted(root.rglob("data.json")):
        files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def roots_of(policies: PolicySet) -> tuple[str, ...]:
    """The bundle's roots: the first segment of every package and every top-level data key."""
    packages = {path.split("/")[0] for path in _packages(policies.modules.values())}
    return tuple(sorted(packages | set(policies.data)))


def _packages(sources: Iterable[str]) -> list[str]:
    found = []
    for source in sources:
        match = re.search(r"^package\s+([A-Za-z_][\w.]*)", source, re.MULTILINE)
        if match:
            found.append(match.group(1).replace(".", "/"))
    return found


def build_bundle(
    policy_dir: str | Path,
    out: str | Path,
    keys: Sequence[BoardSigningKey],
    *,
    scope: str = DEFAULT_SCOPE,
    source: str = "",
    issuer: str = "coopfed",
    now: int | None = None,
    serial: int = 1,
    rollback: bool = False,
    ballots: Sequence[tuple[str, str]] = (),
) -> BundleInfo:
    """Write a signed bundle (.tar.gz) of `policy_dir`; `source` (e.g. a git commit) goes in metadata.

    `serial` orders the bundle among the co-op's bundles (see `next_serial`); `rollback` marks
    one that deliberately re-issues content of an earlier bundle, under a new serial. `ballots`
    names the (ballot id, tally digest) of each passed ballot whose change the bundle carries.

    The archive is reproducible (sorted entries, zero times), so a second board member can
    rebuild it from the same revision, compare, and co-sign with `sign_bundle`.
    """
    if not keys:
        raise BundleError("a bundle needs at least one board signing key")
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 1:
        raise BundleError(f"a bundle's serial is a whole number from 1, not {serial!r}")
    files = bundle_files(policy_dir)
    policies = load_policies(policy_dir)
    manifest: dict[str, Any] = {
        "revision": policies.revision,
        "roots": list(roots_of(policies)),
        "rego_version": 1,
        "metadata": {"coopfed": {"source": source, "serial": serial, "rollback": rollback}},
    }
    if ballots:
        manifest["metadata"]["coopfed"]["ballots"] = [{"ballot_id": b, "tally_digest": d} for b, d in ballots]
    files[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
    hashes = {name: opa_file_hash(name, data) for name, data in files.items()}
    tokens = [sign_files(hashes, key, scope=scope, issuer=issuer, now=now) for key in keys]
    files[SIGNATURES] = _signatures_file(tokens)
    write_archive(Path(out), files)
    return BundleInfo(
        Path(out), policies.revision, tuple(manifest["roots"]), hashes, tuple(k.kid for k in keys),
        serial=serial, rollback=rollback, ballots=tuple(ballots),
    )  # fmt: skip


def next_serial(path: str | Path) -> int:
    """The serial a bundle replacing the one at `path` should carry: its serial + 1, or 1 where
    there is none yet. Read without verifying: a wrong guess is refused by the node anyway."""
    if not Path(path).exists():
        return 1
    serial, _ = _order(_manifest(read_archive(path)))
    return serial + 1


def sign_files(
    hashes: Mapping[str, str],
    key: BoardSigningKey,
    *,
    scope: str = DEFAULT_SCOPE,
    issuer: str = "coopfed",
    now: int | None = None,
) -> str:
    """One JWT over the file list, in OPA's signature format (ES256, kid in the header)."""
    payload = {
        "files": [{"name": n, "hash": h, "algorithm": HASH_ALGORITHM} for n, h in sorted(hashes.items())],
        "iat": int(time.time()) if now is None else now,
        "iss": issuer,
        "scope": scope,
    }
    return jws.sign(payload, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def sign_bundle(path: str | Path, key: BoardSigningKey, *, scope: str = DEFAULT_SCOPE) -> BundleInfo:
    """Add `key`'s signature to a bundle, over the files as they are now (a co-signature).

    The signer vouches for the content it hashes here, not for the signatures already present.
    """
    files = read_archive(path)
    raw = files.pop(SIGNATURES, None)
    tokens = _tokens(raw) if raw is not None else []
    hashes = {name: opa_file_hash(name, data) for name, data in files.items()}
    manifest = _manifest(files)
    tokens = [t for t in tokens if _unverified_kid(t) != key.kid] + [sign_files(hashes, key, scope=scope)]
    files[SIGNATURES] = _signatures_file(tokens)
    write_archive(Path(path), files)
    return BundleInfo(Path(path), str(manifest.get("revision", "")), tuple(manifest.get("roots", ())), hashes)


def _signatures_file(tokens: list[str]) -> bytes:
    return json.dumps({"signatures": tokens}, indent=2).encode("utf-8")


# --- reading and verifying --------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signatures met the threshold, with its policy set ready to compile."""

    info: BundleInfo
    policies: PolicySet


def verify_bundle(
    path: str | Path,
    keys: BoardKeySet,
    *,
    threshold: int = 1,
    scope: str = DEFAULT_SCOPE,
) -> VerifiedBundle:
    """Verify a bundle against the board's keys and load its policies, or raise BundleError.

    Every signature by a board key must verify and list exactly the bundle's files with their
    hashes; signatures by keys outside the set are not counted. At least `threshold` distinct
    board keys must have signed. The manifest's revision must be the content's own hash.
    """
    if threshold < 1 or threshold > len(keys):
        raise BundleError(f"{threshold} signatures required but the board key set holds {len(keys)} keys")
    files = read_archive(path)
    tokens = _tokens(files.pop(SIGNATURES, None))
    hashes = {name: opa_file_hash(name, data) for name, data in files.items()}
    checked = [_check_token(t, keys, hashes, scope) for t in tokens]
    signed_at = {kid: iat for kid, iat in checked if kid}
    signers = sorted(signed_at)
    if len(signers) < threshold:
        raise BundleError(
            f"bundle carries valid signatures from {len(signers)} board key(s); {threshold} required"
        )
    manifest = _manifest(files)
    policies = _load(files)
    revision = manifest.get("revision")
    if revision not in (policies.revision, legacy_revision(policies)):  # a bundle built before JCS
        raise BundleError("the manifest's revision is not the hash of the bundle's policies and data")
    _check_roots(policies, manifest.get("roots"))
    serial, rollback = _order(manifest)
    info = BundleInfo(  # the revision the bundle states, so floors recorded before JCS still match
        Path(path), revision, tuple(manifest["roots"]), hashes, tuple(signers),
        serial=serial, rollback=rollback, issued_at=max(signed_at.values()), ballots=_ballots(manifest),
    )  # fmt: skip
    return VerifiedBundle(info, policies)


def _order(manifest: Mapping[str, Any]) -> tuple[int, bool]:
    """The manifest's serial and rollback flag, or BundleError where they are missing or malformed."""
    meta = manifest.get("metadata")
    ours = meta.get("coopfed") if isinstance(meta, dict) else None
    ours = ours if isinstance(ours, dict) else {}
    serial, rollback = ours.get("serial"), ours.get("rollback", False)
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 1:
        raise BundleError(
            "the bundle's manifest carries no serial (metadata.coopfed.serial); "
            "build it again with `coopfed policy bundle`"
        )
    if not isinstance(rollback, bool):
        raise BundleError("the bundle's manifest says rollback with something other than true or false")
    return serial, rollback


def _ballots(manifest: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The (ballot id, tally digest) pairs the manifest names; BundleError where malformed."""
    meta = manifest.get("metadata")
    ours = meta.get("coopfed") if isinstance(meta, dict) else None
    listed = ours.get("ballots", []) if isinstance(ours, dict) else []
    ok = isinstance(listed, list) and all(
        isinstance(b, dict) and isinstance(b.get("ballot_id"), str) and isinstance(b.get("tally_digest"), str)
        for b in listed
    )
    if not ok:
        raise BundleError("the manifest's ballots must each name a ballot_id and a tally_digest")
    return tuple((b["ballot_id"], b["tally_digest"]) for b in listed)


def _tokens(raw: bytes | None) -> list[str]:
    if raw is None:
        raise BundleError("bundle is not signed: it has no .signatures.json")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise BundleError(".signatures.json is not JSON") from exc
    tokens = doc.get("signatures") if isinstance(doc, dict) else None
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise BundleError(".signatures.json must list one or more JWTs under 'signatures'")
    if len(tokens) > MAX_SIGNATURES:
        raise BundleError("too many signatures")
    return tokens


def _unverified_kid(token: str) -> str:
    kid = jws.unverified_header(token.split(".")[0]).get("kid", "")
    return kid if isinstance(kid, str) else ""


def _check_token(token: str, keys: BoardKeySet, hashes: Mapping[str, str], scope: str) -> tuple[str, int]:
    """The kid and iat of a valid board signature over exactly these files; "" for a key outside
    the set."""
    try:
        parsed = jws.parse(token, algorithm=ALGORITHM)
    except (BadHeader, BadAlgorithm) as exc:
        raise BundleError(
            f"bundle signatures must be {ALGORITHM} JWTs with only alg, typ and kid headers"
        ) from exc
    except UnknownKey:  # no kid: not a board signature
        return "", 0
    except TokenError as exc:
        raise BundleError(f"a bundle signature is not a compact JWT: {exc}") from exc
    kid, payload = parsed.kid, parsed.payload
    if kid not in keys:
        return "", 0
    try:
        parsed.verify(keys[kid])
    except TokenError as exc:
        raise BundleError(f"the signature by board key {kid} does not verify") from exc
    if payload.get("scope") != scope:
        raise BundleError(
            f"the signature by board key {kid} is for scope {payload.get('scope')!r}, not {scope!r}"
        )
    signed = _signed_files(payload, kid)
    if signed != dict(hashes):
        raise BundleError(_mismatch(signed, hashes, kid))
    iat = payload.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int) or iat < 0:
        raise BundleError(f"the signature by board key {kid} carries no issue time (iat)")
    return kid, iat


def _signed_files(payload: dict[str, Any], kid: str) -> dict[str, str]:
    listed = payload.get("files")
    if not isinstance(listed, list):
        raise BundleError(f"the signature by board key {kid} lists no files")
    signed: dict[str, str] = {}
    for item in listed:
        ok = (
            isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("hash"), str)
        )
        if not ok or item.get("algorithm") != HASH_ALGORITHM or not _HEX64.fullmatch(item["hash"]):
            raise BundleError(f"the signature by board key {kid} lists a file without a SHA-256 hash")
        if item["name"] in signed:
            raise BundleError(f"the signature by board key {kid} lists {item['name']} twice")
        signed[item["name"]] = item["hash"]
    return signed


def _mismatch(signed: Mapping[str, str], hashes: Mapping[str, str], kid: str) -> str:
    changed = sorted(n for n in signed.keys() & hashes.keys() if signed[n] != hashes[n])
    added, missing = sorted(hashes.keys() - signed.keys()), sorted(signed.keys() - hashes.keys())
    details = [f"{n}: digest mismatch" for n in changed]
    details += [f"{n}: not included in the signature" for n in added]
    details += [f"{n}: signed but not in the bundle" for n in missing]
    return f"bundle content differs from what board key {kid} signed ({'; '.join(details)})"


def _manifest(files: Mapping[str, bytes]) -> dict[str, Any]:
    raw = files.get(MANIFEST)
    if raw is None:
        raise BundleError("bundle has no .manifest")
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise BundleError(".manifest is not JSON") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("revision"), str):
        raise BundleError(".manifest must be an object with a revision")
    return manifest


def _load(files: Mapping[str, bytes]) -> PolicySet:
    """Load the verified bytes exactly as a policy directory is loaded (same revision)."""
    with tempfile.TemporaryDirectory(prefix="coopfed-bundle-") as tmp:
        for name, data in files.items():
            if name == MANIFEST:
                continue
            target = Path(tmp, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return load_policies(tmp)


def _check_roots(policies: PolicySet, roots: Any) -> None:
    if not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
        raise BundleError(".manifest roots must be a list of paths")
    paths = _packages(policies.modules.values()) + list(policies.data)
    outside = [p for p in paths if not any(p == r or p.startswith(r + "/") for r in roots)]
    if outside:
        raise BundleError(f"bundle content outside its roots: {', '.join(sorted(outside))}")
