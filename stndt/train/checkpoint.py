"""Resumable training state and the member checkpoint (best.pt).

Everything is stored as tensors and plain Python numbers / strings / lists / dicts, so both files load
with ``torch.load(weights_only=True)`` (no pickled code). Writes are atomic (temp file + os.replace via
stndt.io.atomic_path): a job killed at any point leaves either the previous file or the new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from stndt.io import atomic_path, file_sha256

STATE_FILE = "state.pt"  # a member's resumable state, in its folder while it trains
STATE_FORMAT = "stndt-train-state-v1"
MEMBER_FORMAT = "stndt-member-v1"


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """torch.save through a temporary file renamed into place (stndt.io.atomic_path).

    atomic_path gives the file the umask's default mode and turns a full disk (torch reports it as
    "unexpected pos ...") into an OSError naming `path`, leaving nothing under the final name.
    """
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | os.PathLike, device: str | torch.device = "cpu") -> Any:
    """torch.load(weights_only=True) with an error that names the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file does not exist")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # corrupt / foreign file
        raise RuntimeError(f"{path}: cannot be loaded as a checkpoint ({type(e).__name__}: {e})") from e


# Every key a state.pt of a member trained alone (stndt.train.solo) holds; a file missing one cannot be resumed.
STATE_KEYS: tuple[str, ...] = (
    "format",
    "fingerprint",
    "epoch",
    "step",
    "elapsed_s",
    "best",
    "log",
    "done",
    "stop_reason",
    "model",
    "optimizer",
    "rng",
)


def state_problem(obj: Any, fmt: str = STATE_FORMAT, keys: tuple[str, ...] = STATE_KEYS) -> str:
    """Why `obj` (a loaded state file) cannot be resumed, or "" when it is a `fmt` dict with `keys`
    (by default: a state.pt)."""
    if not isinstance(obj, dict):
        return f"holds a {type(obj).__name__}, not a {fmt} dict"
    if obj.get("format") != fmt:
        return f"format {obj.get('format')!r}, not {fmt!r}"
    missing = [k for k in keys if k not in obj]
    return f"{fmt} without {', '.join(missing)}" if missing else ""


def load_state_file(
    path: str | os.PathLike, fmt: str = STATE_FORMAT, keys: tuple[str, ...] = STATE_KEYS
) -> tuple[dict[str, Any] | None, str]:
    """(state, "") for a usable state file, (None, reason) for a damaged one (truncated, garbage,
    another format, missing keys). A file that exists but cannot be read (permissions, I/O error) is
    not damaged: that error is raised, since setting the file aside would not fix it."""
    try:
        obj = load_torch(path)
    except RuntimeError as e:
        cause = e.__cause__
        if isinstance(cause, OSError) or cause is None:
            raise
        lines = str(cause).strip().splitlines()
        return None, f"{type(cause).__name__}: {lines[0][:300] if lines else 'no message'}"
    problem = state_problem(obj, fmt, keys)
    return (None, problem) if problem else (obj, "")


def resume_state(
    path: Path,
    run_id: str,
    loggers: Sequence[logging.Logger],
    *,
    fmt: str = STATE_FORMAT,
    keys: tuple[str, ...] = STATE_KEYS,
    subject: str = "this member",
) -> dict[str, Any] | None:
    """The saved state at `path` of the run `run_id` (its fingerprint) to resume, or None to start afresh.

    A damaged state file (truncated, garbage, another format) would fail every rerun the same way, so
    it is renamed aside (kept, never deleted), a WARNING naming it and the error goes to every logger
    (each member's train.log), and the run starts afresh: training is deterministic, so the result is
    a clean run's. A state saved for other parameters or data is ignored (and overwritten later).
    """
    if not path.exists():
        return None
    st, problem = load_state_file(path, fmt, keys)
    if st is None:
        aside = set_aside(path)
        for lg in loggers:
            lg.warning(
                "%s cannot be resumed (%s); kept it as %s and starting %s afresh", path, problem, aside.name, subject
            )
        return None
    if st.get("fingerprint") != run_id:
        for lg in loggers:
            lg.warning("%s was saved for other parameters or data; starting %s afresh", path, subject)
        return None
    return st


def set_aside(path: str | os.PathLike, now: datetime | None = None) -> Path:
    """Rename `path` to `<name>.corrupt-<UTC timestamp>` (never deleting or overwriting anything) and
    return the new path: a damaged file stops blocking its job but stays for inspection."""
    path = Path(path)
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.rename(path, aside)
    return aside


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes: ties a saved state to the exact data it was trained on."""
    return file_sha256(path, chunk)


def fingerprint(configs: Mapping[str, Any], data_files: list[Path | None]) -> str:
    """Identity of a training run: resolved configs (JSON) plus the digests of its input files."""
    payload = {
        "configs": configs,
        "data": [None if p is None else file_digest(p) for p in data_files],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies of a module's state (a snapshot unaffected by later training)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def capture_rng(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """States of torch's global RNGs (dropout) and of the named generators, as uint8 tensors."""
    state: dict[str, Any] = {"torch_cpu": torch.get_rng_state()}
    state["torch_cuda"] = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    state["generators"] = {name: g.get_state() for name, g in generators.items()}
    return state


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    """Inverse of capture_rng; the generators must be the same names on the same device type."""
    torch.set_rng_state(state["torch_cpu"])
    cuda_states = state.get("torch_cuda") or []
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    saved = state["generators"]
    if set(saved) != set(generators):
        raise ValueError(f"saved generators {sorted(saved)} differ from expected {sorted(generators)}")
    for name, g in generators.items():
        g.set_state(saved[name])


def load_member(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild a trained member from its best.pt (or its folder): (model in eval mode, checkpoint dict).

    The dict holds model_config / objective_config / train_config (plain dicts), the best epoch and
    its val metrics.
    """
    from stndt.model.config import ModelConfig
    from stndt.model.stndt import STNDT

    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    ckpt = load_torch(path, device)
    if not isinstance(ckpt, dict) or ckpt.get("format") != MEMBER_FORMAT:
        raise ValueError(f"{path}: not a {MEMBER_FORMAT} checkpoint")
    model = STNDT(ModelConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    return model, ckpt
