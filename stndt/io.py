"""Small file helpers shared by every stage: atomic writes and HDF5 dict round-trips.

A half-written output must never look finished, so every writer goes through `atomic_path`:
write to a temporary name in the same folder, then rename (atomic on POSIX). The renamed file gets
the mode a plain `open()` would have given it (mkstemp's 0600 would hide results from colleagues on
a shared cluster), and a write that fails because the disk is full says so, naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

# Below this many free bytes a failed write is blamed on a full disk even when the writer's own error
# does not say so (torch.save reports "unexpected pos ..." instead of ENOSPC; HDF5 wraps errno in text).
NEARLY_FULL_BYTES = 1 << 20


def current_umask() -> int:
    """The process umask. POSIX can only read it by setting it, so set and restore it at once (the
    brief window uses the strict 077, so a file another thread creates meanwhile errs on private)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """Mode a plain `open(path, "w")` gives a new file under the current umask."""
    return 0o666 & ~current_umask()


def default_dir_mode() -> int:
    """Mode a plain `mkdir` gives a new folder under the current umask."""
    return 0o777 & ~current_umask()


def disk_full_error(path: str | os.PathLike, exc: BaseException) -> OSError | None:
    """An OSError naming `path` and saying the disk is full, if `exc` came from a full disk; else None.

    ENOSPC / EDQUOT are recognised directly. Other writers hide it (torch.save: RuntimeError
    "unexpected pos 104832 vs 104720"; h5py: OSError without errno), so for those the free space of the
    target folder decides. Call this before deleting the partial file, whose bytes count as used.
    """
    if not isinstance(exc, (OSError, RuntimeError)):
        return None
    path = Path(path)
    folder = path.parent
    try:
        free: int | None = shutil.disk_usage(folder).free
    except OSError:
        free = None
    code = getattr(exc, "errno", None)
    if code == errno.EDQUOT:
        return OSError(errno.EDQUOT, f"{path}: disk quota exceeded ({free} bytes free in {folder}; {exc})")
    if code == errno.ENOSPC or (free is not None and free < NEARLY_FULL_BYTES):
        return OSError(
            errno.ENOSPC,
            f"{path}: no space left on device (disk full: {free} bytes free in {folder}; {type(exc).__name__}: {exc})",
        )
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    The temporary file exists (empty, from mkstemp) when the block starts; the block may also replace
    it. On success it gets `default_file_mode()` before the rename; on failure it is removed, and a
    failure caused by a full disk is re-raised as `disk_full_error`'s OSError naming `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # no inodes / no space for even an empty file
        full = disk_full_error(path, e)
        if full is not None:
            raise full from e
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, default_file_mode())
        os.replace(tmp_path, path)
    except BaseException as e:
        full = disk_full_error(path, e)  # before unlinking: the partial file's bytes are part of the story
        tmp_path.unlink(missing_ok=True)
        if full is not None:
            raise full from e
        raise


def write_csv(path: str | os.PathLike, table) -> None:
    """A pandas DataFrame written to `path` as CSV (no index), atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in `chunk`-sized blocks (constant memory for 20 GB files)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON through `atomic_path` (numpy scalars/arrays and paths allowed)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_h5(path: str | os.PathLike, data: dict, attrs: dict | None = None) -> None:
    """Write a nested dict of arrays atomically with nlb_tools' own writer (`save_to_h5`).

    Using nlb_tools' writer keeps its conventions exactly (float32/int32 storage, ragged arrays such as
    `eval_cond_idx` as variable-length datasets), so nlb_tools reads our files like its own. `attrs` go on
    the root group before the file gets its final name.
    """
    from nlb_tools.make_tensors import save_to_h5

    with atomic_path(path) as tmp:
        tmp.unlink()  # nlb_tools opens in append mode and needs a non-existent or valid HDF5 file
        save_to_h5(_rectangular(data), str(tmp), overwrite=True)
        if attrs:
            with h5py.File(tmp, "a") as f:
                f.attrs.update(attrs)


def _rectangular(data: dict) -> dict:
    """Turn 2-D object arrays of numbers into numeric arrays.

    nlb_tools builds condition-index lists (`eval_cond_idx`) as object arrays; when every condition
    happens to have the same number of trials numpy makes them 2-D arrays of Python ints, which its own
    writer cannot store. As plain integer arrays they index exactly the same trials.
    """
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = _rectangular(value)
        elif isinstance(value, np.ndarray) and value.dtype == object and value.ndim >= 2:
            out[key] = np.array(value.tolist())
        else:
            out[key] = value
    return out


def read_h5_attrs(path: str | os.PathLike) -> dict:
    with h5py.File(path, "r") as f:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}


def load_h5(path: str | os.PathLike) -> dict:
    """Read a whole HDF5 file into a nested dict of numpy arrays."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file does not exist")
    try:
        with h5py.File(path, "r") as f:
            return _read_group(f)
    except OSError as e:
        raise OSError(f"{path}: not a readable HDF5 file ({e})") from e


def _read_group(group: h5py.Group) -> dict:
    out: dict = {}
    for key, item in group.items():
        out[key] = _read_group(item) if isinstance(item, h5py.Group) else item[()]
    return out


def link_files(
    src_dir: str | os.PathLike, outputs: list[str | os.PathLike], log: str | os.PathLike | None = None
) -> None:
    """Make each output path the file of the same name in `src_dir`: a hard link (no copy of a large
    checkpoint), or a copy where the filesystem has none; its time is set to now, so that a workflow
    sees it newer than what it was made from. `log`: a file listing what was linked."""
    done = []
    for out in map(Path, outputs):
        src = Path(src_dir) / out.name
        if not src.is_file():
            raise FileNotFoundError(f"{src}: missing (expected next to the other files of its member)")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        try:
            os.link(src, out)
            done.append(f"linked {src} -> {out}")
        except OSError:
            shutil.copy2(src, out)
            done.append(f"copied {src} -> {out}")
        os.utime(out)
    if log is not None:
        with atomic_path(log) as tmp:
            tmp.write_text("\n".join(done) + "\n")


RESULTS_LOCK = ".stndt.lock"


def lock_results(results_dir: str | os.PathLike):
    """Hold an exclusive lock on a results folder for the life of this process (the main Snakemake
    process: the Snakefile's onstart), or raise naming the run that holds it.

    Snakemake locks the working directory it runs in, not an absolute `results_dir` that two checkouts
    share: their runs would stage into the same folders and delete each other's outputs as incomplete.
    An OS file lock (flock) is released when its process ends, even on kill -9, so it never goes stale.
    Returns the open lock file; keep a reference to it."""
    import fcntl
    import socket

    path = Path(results_dir) / RESULTS_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RuntimeError(
            f"{Path(results_dir).resolve()} is in use by another Snakemake run ({holder}); "
            "two runs must not share a results folder: wait for it to finish, or give this "
            "run its own results_dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, working directory {os.getcwd()}\n")
    handle.flush()
    return handle
