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
