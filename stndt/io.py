"""Small file helpers shared by every stage: atomic writes and HDF5 dict round-trips.

A half-written output must never look finished, so every writer goes through `atomic_path`:
write to a temporary name in the same folder, then rename (atomic on POSIX).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
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


def save_h5(path: str | os.PathLike, data: dict, compression: str | None = "gzip",
            attrs: dict | None = None) -> None:
    """Write a nested dict of arrays to HDF5 atomically (groups for nested dicts; `attrs` on the root)."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            _write_group(f, data, compression)
            f.attrs.update(attrs or {})


def _write_group(group: h5py.Group, data: dict, compression: str | None) -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            _write_group(group.create_group(key), value, compression)
        else:
            arr = np.asarray(value)
            if arr.dtype.kind == "U":
                arr = arr.astype("S")
            kwargs = {"compression": compression} if (compression and arr.ndim > 0) else {}
            group.create_dataset(key, data=arr, **kwargs)


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
