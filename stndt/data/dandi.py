"""Download NLB datasets from the DANDI archive with the `dandi` client.

Verified (each file's digest must equal the one DANDI publishes: sha2-256 when the archive has it,
else the dandi-etag), idempotent (a cached file is reused only once verified; the verified digest is
kept in a `<file>.digest` sidecar with the file's size and mtime, so an unchanged 20 GB file is not
rehashed on every dry run, while a changed one is), atomic (bytes go to a temporary name and are
renamed only once complete, size-checked and verified) and retried with backoff on transient network
errors, resuming from the bytes already received. A digest mismatch downloads once more; a second
one is an error naming the asset and both digests.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from stndt.datasets import nlb_dataset
from stndt.io import atomic_path, disk_full_error, file_sha256

# Keys of an asset's metadata["digest"] dict (the values of dandischema.models.DigestType), best first.
SHA256 = "dandi:sha2-256"
DANDI_ETAG = "dandi:dandi-etag"
_PREFERRED = (SHA256, DANDI_ETAG)
SIDECAR_SUFFIX = ".digest"

log = logging.getLogger(__name__)

# The NLB dandisets hold one train file (train+val trials, held-out units, behaviour) and one test file.
_WANTED = ("desc-train", "desc-test")


@dataclass(frozen=True)
class DownloadConfig:
    version: str | None = None  # dandiset version; None = most recent published, else draft
    retries: int = 5
    backoff_s: float = 2.0  # first wait; doubles after each failure
    chunk_size: int = 1 << 22


class TransientError(Exception):
    """Raised by fakes in tests; real transient errors are the network exceptions below."""


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [TransientError, ConnectionError, TimeoutError]
    try:
        import requests

        errors += [
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ]
    except ImportError:  # pragma: no cover - requests ships with dandi
        pass
    return tuple(errors)


def nlb_assets(dandiset: Any, folder: str) -> list[Any]:
    """The train and test NWB assets of an NLB dandiset (by their `desc-train` / `desc-test` names)."""
    assets = [
        a
        for a in dandiset.get_assets_with_path_prefix(folder + "/")
        if a.path.endswith(".nwb") and any(w in a.path for w in _WANTED)
    ]
    kinds = {w for a in assets for w in _WANTED if w in a.path}
    if kinds != set(_WANTED):
        found = ", ".join(a.path for a in assets) or "nothing"
        raise RuntimeError(
            f"dandiset {dandiset.identifier}: expected a desc-train and a desc-test NWB file "
            f"under {folder}/, found {found}"
        )
    return sorted(assets, key=lambda a: a.path)


@dataclass(frozen=True)
class Digest:
    """A digest as DANDI names it: `algorithm` is a DigestType value (e.g. "dandi:sha2-256")."""

    algorithm: str
    value: str


def published_digest(asset: Any) -> Digest | None:
    """The best digest the archive publishes for `asset` (sha2-256, else dandi-etag), None if neither.

    Read from the asset metadata's `digest` dict, as `RemoteAsset.get_raw_digest` does, in one request.
    """
    digests = (asset.get_raw_metadata() or {}).get("digest") or {}
    for algorithm in _PREFERRED:
        if digests.get(algorithm):
            return Digest(algorithm, str(digests[algorithm]))
    return None


def local_digest(path: Path, algorithm: str) -> str:
    """Digest of a local file by a DANDI algorithm: sha256 (1 MiB chunks) or the dandi-etag.

    The etag is dandischema's `DandiETag.from_file`, the computation behind dandi's `get_dandietag`,
    called directly so no second, hidden cache (fscacher) is kept beside our sidecar.
    """
    if algorithm == SHA256:
        return file_sha256(path)
    if algorithm == DANDI_ETAG:
        from dandischema.digests.dandietag import DandiETag

        return str(DandiETag.from_file(path).as_str())
    raise ValueError(f"{path}: unsupported digest algorithm {algorithm!r} (expected {' or '.join(_PREFERRED)})")


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + SIDECAR_SUFFIX)


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cached_digest(dest: Path, algorithm: str) -> str | None:
    """The digest recorded in `dest`'s sidecar, if it is for `algorithm` and `dest` still has the size
    and mtime it had when verified; None otherwise (missing, unreadable or stale sidecar)."""
    try:
        rec = json.loads(_sidecar(dest).read_text())
        fresh = rec["algorithm"] == algorithm and {k: rec[k] for k in ("size", "mtime_ns")} == _stat_key(dest)
        return str(rec["digest"]) if fresh else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_digest(dest: Path, digest: Digest) -> None:
    """Write `dest`'s verified digest with its current size and mtime to the sidecar (atomically)."""
    with atomic_path(_sidecar(dest)) as tmp:
        tmp.write_text(json.dumps({"algorithm": digest.algorithm, "digest": digest.value, **_stat_key(dest)}) + "\n")


def _actual_digest(dest: Path, algorithm: str) -> str:
    """`dest`'s digest: from a fresh sidecar, else computed from its bytes."""
    return cached_digest(dest, algorithm) or local_digest(dest, algorithm)


def download_asset(
    asset: Any, dest: Path, cfg: DownloadConfig = DownloadConfig(), sleep: Callable[[float], None] = time.sleep
) -> bool:
    """Download one asset to `dest`, verified. Returns False when a verified copy was already there."""
    size = int(asset.size)
    expected = published_digest(asset)
    if expected is None:
        log.warning("%s: the archive publishes no sha2-256 or dandi-etag digest; checking the size only", asset.path)
    if dest.exists() and dest.stat().st_size == size:
        if expected is None:
            log.info("%s: already complete (%d bytes), skipped", dest, size)
            return False
        actual = _actual_digest(dest, expected.algorithm)
        if actual == expected.value:
            if cached_digest(dest, expected.algorithm) is None:
                record_digest(dest, expected)
            log.info("%s: already complete and verified (%s), skipped", dest, expected.algorithm)
            return False
        log.warning(
            "%s: cached copy has %s %s, the archive publishes %s; downloading it again",
            dest,
            expected.algorithm,
            actual,
            expected.value,
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in (1, 2):
        _fetch(asset, part, size, cfg, sleep)
        if expected is None:
            break
        actual = local_digest(part, expected.algorithm)
        if actual == expected.value:
            break
        part.unlink(missing_ok=True)
        if attempt == 2:
            raise RuntimeError(
                f"{asset.path}: downloaded twice, both with the wrong {expected.algorithm}: "
                f"expected {expected.value}, got {actual}; nothing kept"
            )
        log.warning(
            "%s: downloaded file has %s %s, the archive publishes %s; downloading once more",
            asset.path,
            expected.algorithm,
            actual,
            expected.value,
        )
    _sidecar(dest).unlink(missing_ok=True)  # the old record must never vouch for the new bytes
    part.replace(dest)
    if expected is not None:
        record_digest(dest, expected)
    return True


def _fetch(asset: Any, part: Path, size: int, cfg: DownloadConfig, sleep: Callable[[float], None]) -> None:
    """Download `asset` into `part` from scratch, retrying transient errors by resuming; size-checked.

    On any failure `part` is removed (a full disk is reported as such, naming `part`)."""
    part.unlink(missing_ok=True)
    downloader = asset.get_download_file_iter(chunk_size=cfg.chunk_size)
    errors = _transient_errors()
    wait = cfg.backoff_s
    with tqdm(total=size, unit="B", unit_scale=True, desc=part.name.removesuffix(".part")) as bar:
        for attempt in range(cfg.retries + 1):
            done = part.stat().st_size if part.exists() else 0
            bar.n = done
            try:
                with open(part, "ab") as fp:
                    for chunk in downloader(done):
                        fp.write(chunk)
                        bar.update(len(chunk))
                break
            except errors as e:
                if attempt == cfg.retries:
                    part.unlink(missing_ok=True)
                    raise RuntimeError(f"{asset.path}: download failed after {cfg.retries + 1} attempts: {e}") from e
                log.warning(
                    "%s: transient error (%s); retry %d/%d in %.0f s", asset.path, e, attempt + 1, cfg.retries, wait
                )
                sleep(wait)
                wait *= 2
            except OSError as e:
                full = disk_full_error(part, e)
                part.unlink(missing_ok=True)
                if full is not None:
                    raise full from e
                raise
    got = part.stat().st_size
    if got != size:
        part.unlink(missing_ok=True)
        raise RuntimeError(f"{asset.path}: downloaded {got} bytes, the archive says {size}; nothing kept")


def download_dataset(
    name: str, raw_dir: Path, cfg: DownloadConfig = DownloadConfig(), client: Any = None
) -> list[Path]:
    """Fetch the train and test NWB files of NLB dataset `name` into `raw_dir`; return their paths."""
    info = nlb_dataset(name)
    if client is None:
        from dandi.dandiapi import DandiAPIClient

        client = DandiAPIClient()
    dandiset = client.get_dandiset(info.dandiset, cfg.version)
    paths = []
    for asset in nlb_assets(dandiset, info.dandi_dir):
        dest = Path(raw_dir) / Path(asset.path).name
        download_asset(asset, dest, cfg)
        paths.append(dest)
    return paths
