"""Download NLB datasets from the DANDI archive with the `dandi` client.

Idempotent (a file whose size matches the archive's is skipped), atomic (bytes go to a temporary
name and are renamed only once complete and size-checked) and retried with backoff on transient
network errors, resuming from the bytes already received.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from stndt.datasets import nlb_dataset

log = logging.getLogger(__name__)

# The NLB dandisets hold one train file (train+val trials, held-out units, behaviour) and one test file.
_WANTED = ("desc-train", "desc-test")


@dataclass(frozen=True)
class DownloadConfig:
    version: str | None = None      # dandiset version; None = most recent published, else draft
    retries: int = 5
    backoff_s: float = 2.0          # first wait; doubles after each failure
    chunk_size: int = 1 << 22


class TransientError(Exception):
    """Raised by fakes in tests; real transient errors are the network exceptions below."""


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [TransientError, ConnectionError, TimeoutError]
    try:
        import requests

        errors += [requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                   requests.exceptions.ChunkedEncodingError]
    except ImportError:  # pragma: no cover - requests ships with dandi
        pass
    return tuple(errors)


def nlb_assets(dandiset: Any, folder: str) -> list[Any]:
    """The train and test NWB assets of an NLB dandiset (by their `desc-train` / `desc-test` names)."""
    assets = [a for a in dandiset.get_assets_with_path_prefix(folder + "/")
              if a.path.endswith(".nwb") and any(w in a.path for w in _WANTED)]
    kinds = {w for a in assets for w in _WANTED if w in a.path}
    if kinds != set(_WANTED):
        found = ", ".join(a.path for a in assets) or "nothing"
        raise RuntimeError(f"dandiset {dandiset.identifier}: expected a desc-train and a desc-test NWB file "
                           f"under {folder}/, found {found}")
    return sorted(assets, key=lambda a: a.path)


def download_asset(asset: Any, dest: Path, cfg: DownloadConfig = DownloadConfig(),
                   sleep: Callable[[float], None] = time.sleep) -> bool:
    """Download one asset to `dest`. Returns False when a complete copy was already there."""
    size = int(asset.size)
    if dest.exists() and dest.stat().st_size == size:
        log.info("%s: already complete (%d bytes), skipped", dest, size)
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)
    downloader = asset.get_download_file_iter(chunk_size=cfg.chunk_size)
    errors = _transient_errors()
    wait = cfg.backoff_s
    with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name) as bar:
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
                    raise RuntimeError(f"{asset.path}: download failed after {cfg.retries + 1} attempts: {e}") from e
                log.warning("%s: transient error (%s); retry %d/%d in %.0f s", asset.path, e,
                            attempt + 1, cfg.retries, wait)
                sleep(wait)
                wait *= 2
    got = part.stat().st_size
    if got != size:
        part.unlink(missing_ok=True)
        raise RuntimeError(f"{asset.path}: downloaded {got} bytes, the archive says {size}; nothing kept")
    part.replace(dest)
    return True


def download_dataset(name: str, raw_dir: Path, cfg: DownloadConfig = DownloadConfig(),
                     client: Any = None) -> list[Path]:
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

