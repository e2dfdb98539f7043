"""Tests of stndt.io's atomic writers and of everything built on them (save_torch, staged folders):
outputs get the mode a plain open()/mkdir would give under the umask, and a full disk is reported as
such, naming the path, with nothing left under the final name."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch

import stndt.io as sio
from stndt.data.staging import staged_dir
from stndt.io import atomic_path, current_umask, save_h5, write_json
from stndt.train.checkpoint import save_torch


@pytest.fixture
def umask():
    """Set the process umask for one test (parametrised indirectly) and restore it afterwards."""

    def set_mask(mask: int) -> int:
        return os.umask(mask)

    old = os.umask(0o022)
    os.umask(old)
    yield set_mask
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_all(folder: Path) -> dict[str, Path]:
    """One output of every atomic writer, plus a staged folder."""
    paths = {
        "json": folder / "a.json",
        "h5": folder / "b.h5",
        "torch": folder / "c.pt",
        "text": folder / "d.txt",
        "dir": folder / "raw",
    }
    write_json(paths["json"], {"x": 1})
    save_h5(paths["h5"], {"x": np.arange(3.0)}, attrs={"phase": "val"})
    save_torch(paths["torch"], {"w": torch.zeros(2)})
    with atomic_path(paths["text"]) as tmp:
        tmp.write_text("hello\n")
    with staged_dir(paths["dir"]) as tmp:
        (tmp / "f.nwb").write_bytes(b"x")
    return paths


@pytest.mark.parametrize(
    "mask, file_mode, dir_mode",
    [
        (0o022, 0o644, 0o755),  # the usual default: colleagues can read
        (0o002, 0o664, 0o775),  # group-shared project folders: the group can also write
        (0o077, 0o600, 0o700),  # the user asked for privacy: it stays private
    ],
    ids=["umask022", "umask002", "umask077"],
)
def test_outputs_get_the_umask_default_mode(tmp_path: Path, umask, mask, file_mode, dir_mode):
    umask(mask)
    paths = _write_all(tmp_path)
    assert {k: oct(_mode(p)) for k, p in paths.items()} == {
        "json": oct(file_mode),
        "h5": oct(file_mode),
        "torch": oct(file_mode),
        "text": oct(file_mode),
        "dir": oct(dir_mode),
    }
    assert json.loads(paths["json"].read_text()) == {"x": 1}
    assert current_umask() == mask and os.umask(mask) == mask  # reading it changed nothing


# ------------------------------------------------------------------------------------------- full disk
Usage = namedtuple("Usage", "total used free")


def _assert_clean(folder: Path, final: Path, old: bytes | None) -> None:
    """Nothing half-written anywhere: the final name holds the previous file (or nothing), no temps."""
    assert (final.read_bytes() if final.exists() else None) == old
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def _enospc_after_partial(write_part):
    """A writer `f(obj, target, ...)` (torch.save, save_to_h5) that puts some bytes down, then fails
    as a full disk does."""

    def writer(obj, target, *args, **kwargs):
        write_part(Path(target))
        raise OSError(errno.ENOSPC, "No space left on device")

    return writer


def test_write_json_on_full_disk_names_the_path(tmp_path: Path, monkeypatch):
    final = tmp_path / "x" / "metrics.json"
    write_json(final, {"old": True})
    old = final.read_bytes()
    monkeypatch.setattr(
        Path,
        "write_text",
        lambda self, text, *a, **k: (
            open(self, "w").write(text[:5]),
            _raise(OSError(errno.ENOSPC, "No space left on device")),
        ),
    )
    with pytest.raises(
        OSError, match=r"x/metrics.json: no space left on device \(disk full: \d+ bytes free in " + str(tmp_path / "x")
    ) as info:
        write_json(final, {"new": list(range(100))})
    assert info.value.errno == errno.ENOSPC
    _assert_clean(final.parent, final, old)


def _raise(e: BaseException):
    raise e


def test_save_h5_on_full_disk_names_the_path(tmp_path: Path, monkeypatch):
    import nlb_tools.make_tensors as mt

    final = tmp_path / "rates_val.h5"
    monkeypatch.setattr(mt, "save_to_h5", _enospc_after_partial(lambda p: p.write_bytes(b"\x89HDF\r\n")))
    with pytest.raises(OSError, match="rates_val.h5: no space left on device") as info:
        save_h5(final, {"x": np.arange(3.0)})
    assert info.value.errno == errno.ENOSPC and isinstance(info.value.__cause__, OSError)
    _assert_clean(tmp_path, final, None)


def test_save_torch_on_full_disk_names_the_path(tmp_path: Path, monkeypatch):
    final = tmp_path / "state.pt"
    save_torch(final, {"epoch": 1})
    old = final.read_bytes()
    monkeypatch.setattr(torch, "save", _enospc_after_partial(lambda p: p.write_bytes(b"PK\x03\x04")))
    with pytest.raises(OSError, match="state.pt: no space left on device"):
        save_torch(final, {"epoch": 2})
    _assert_clean(tmp_path, final, old)


def test_torch_stream_error_on_a_full_filesystem_is_reported_as_disk_full(tmp_path: Path, monkeypatch):
    """torch.save does not say ENOSPC: it fails with "unexpected pos"; the free space tells the story."""
    final = tmp_path / "state.pt"

    def torch_save(obj, target):
        Path(target).write_bytes(b"PK\x03\x04" * 10)
        raise RuntimeError(
            "[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing "
            "file data/0: file write failed; unexpected pos 104832 vs 104720"
        )

    monkeypatch.setattr(torch, "save", torch_save)
    monkeypatch.setattr(sio.shutil, "disk_usage", lambda p: Usage(10 << 30, 10 << 30, 0))
    with pytest.raises(
        OSError,
        match=f"state.pt: no space left on device \\(disk full: 0 bytes free in "
        f"{tmp_path}; RuntimeError: .*unexpected pos 104832",
    ) as info:
        save_torch(final, {"epoch": 2})
    assert info.value.errno == errno.ENOSPC
    _assert_clean(tmp_path, final, None)
    # the same error with room on the disk is some other problem: it is not relabelled
    monkeypatch.setattr(sio.shutil, "disk_usage", lambda p: Usage(10 << 30, 5 << 30, 5 << 30))
    with pytest.raises(RuntimeError, match="unexpected pos"):
        save_torch(final, {"epoch": 2})
    _assert_clean(tmp_path, final, None)


def test_no_room_for_even_the_temporary_file(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(sio.tempfile, "mkstemp", lambda **kw: _raise(OSError(errno.ENOSPC, "No space")))
    with pytest.raises(OSError, match="params.json: no space left on device"):
        write_json(tmp_path / "params.json", {})
    assert list(tmp_path.iterdir()) == []


def test_other_errors_pass_through_unchanged(tmp_path: Path):
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_json(tmp_path / "x.json", {"f": object()})
    assert list(tmp_path.iterdir()) == []
