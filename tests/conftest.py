"""Shared test helpers: run the real workflow with Snakemake on tiny configs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Rules call `python -m stndt.cli`: make sure it is this interpreter.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, config: Path, *args: str, check: bool = True, timeout: int = 900
              ) -> subprocess.CompletedProcess:
    """Run the project's Snakefile with `config`, results relative to `workdir`."""
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow" / "Snakefile"),
           "--configfile", str(config), "--directory", str(workdir), "--cores", "2",
           "--show-failed-logs", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
