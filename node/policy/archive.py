"""Bundle archives (.tar.gz): written reproducibly and atomically, read with no trust in their layout."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from coopfed.federation.atomic import write_atomic
from coopfed.node.policy.errors import PolicyError

MANIFEST = ".manifest"
SIGNATURES = ".signatures.json"
MAX_FILES = 1_000
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_BUNDLE_BYTES = 64 * 1024 * 1024


class BundleError(PolicyError):
    """A bundle that is malformed, not signed as required, or altered after signing."""

    code = "policy_bundle_refused"


def write_archive(path: Path, files: Mapping[str, bytes]) -> None:
    """A reproducible .tar.gz written beside its target and renamed over it (never half a bundle)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, packed.getvalue(), 0o600)


def read_archive(path: str | Path) -> dict[str, bytes]:
    """The files of a .tar.gz bundle, refusing links, odd paths, duplicates and oversize content."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            return _members(tar)
    except (OSError, tarfile.TarError, EOFError, gzip.BadGzipFile) as exc:
        raise BundleError(f"cannot read bundle {path}: {exc}") from exc


def _members(tar: tarfile.TarFile) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    for member in tar:
        if member.isdir():
            continue
        name = _safe_name(member.name)
        if not member.isreg():
            raise BundleError(f"bundle entry {name} is not a regular file")
        if name in files:
            raise BundleError(f"bundle entry {name} appears twice")
        if len(files) >= MAX_FILES or member.size > MAX_FILE_BYTES or total + member.size > MAX_BUNDLE_BYTES:
            raise BundleError("bundle is larger than a policy bundle may be")
        extracted = tar.extractfile(member)
        assert extracted is not None  # a regular file
        files[name] = extracted.read(MAX_FILE_BYTES + 1)
        total += len(files[name])
    return files


def _safe_name(raw: str) -> str:
    name = raw.lstrip("/")
    parts = PurePosixPath(name).parts
    if not parts or "\\" in name or any(p in ("..", ".") for p in parts) or "\x00" in name:
        raise BundleError(f"bundle entry {raw!r} has an unsafe path")
    kind = PurePosixPath(name).name
    if name not in (MANIFEST, SIGNATURES) and not (kind.endswith(".rego") or kind == "data.json"):
        raise BundleError(f"bundle entry {name} is not a policy, data.json, .manifest or .signatures.json")
    return name
