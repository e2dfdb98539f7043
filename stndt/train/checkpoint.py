"""Resumable training state and the member checkpoint (best.pt).

Everything is stored as tensors and plain Python numbers / strings / lists / dicts, so both files load
with ``torch.load(weights_only=True)`` (no pickled code). Writes are atomic (temp file + os.replace via
stndt.io.atomic_path): a job killed at any point leaves either the previous file or the new one.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from stndt.io import atomic_path

STATE_FORMAT = "stndt-train-state-v1"
MEMBER_FORMAT = "stndt-member-v1"


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """torch.save through a temporary file renamed into place."""
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


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes: ties a saved state to the exact data it was trained on."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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
