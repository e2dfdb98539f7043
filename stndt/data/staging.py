"""Put a dataset's raw NWB files in place as one atomic step.

A raw folder is built under a temporary name and renamed when complete, so a crash never leaves a
folder that looks like a finished dataset; an existing folder is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from stndt.data.nwb_checks import check_raw_dir
from stndt.io import default_dir_mode


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder next to `final`; rename it to `final` only if the block succeeds.

    mkdtemp makes the folder 0700; before the rename it gets the mode a plain `mkdir` would give
    under the current umask, so colleagues sharing the results can read it. On failure it is removed.
    """
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"{final}: already exists; remove it to rebuild (results are never overwritten)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, default_dir_mode())
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def stage_files(files: Iterable[Path], out: Path, layout: str, link: bool = False) -> None:
    """Place `files` in `out`: symlinks to the user's files (`link`) or hard links/copies of downloads."""
    with staged_dir(out) as tmp:
        for f in map(Path, files):
            dest = tmp / f.name
            if link:
                dest.symlink_to(f.resolve())
            else:
                try:
                    os.link(f, dest)
                except OSError:
                    shutil.copy2(f, dest)
        check_raw_dir(tmp, layout)
