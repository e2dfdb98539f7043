"""Where a member trains, and failing loudly when that place is missing.

A job that the scheduler gave a GPU but that finds no usable CUDA (a CPU build of PyTorch, a driver
mismatch, a node without the GPU it was promised) must not fall back to the CPU: one member would then
train for a day at a hundredth of the speed while looking healthy. `require_cuda` stops it in seconds.
"""
from __future__ import annotations

import os


class NoGPUError(RuntimeError):
    """A job was given a GPU but cannot use CUDA."""


def require_cuda(n_gpus: int = 1) -> None:
    """Raise NoGPUError naming the cause unless CUDA is usable with at least `n_gpus` devices."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            cause = (f"this PyTorch build ({torch.__version__}) has no CUDA support; install a CUDA build "
                     "(pip: the default Linux wheel of torch is one; --sdm conda: envs/stndt.yaml installs it)")
        else:
            cause = (f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU "
                     f"(CUDA_VISIBLE_DEVICES={visible!r}; check the job's GPU request and the node's driver)")
        raise NoGPUError(f"this job was given {n_gpus} GPU(s) but CUDA is not available: {cause}. "
                         "Refusing to train on the CPU instead.")
    if torch.cuda.device_count() < n_gpus:
        raise NoGPUError(f"this job was given {n_gpus} GPU(s) but CUDA sees {torch.cuda.device_count()} "
                         f"(CUDA_VISIBLE_DEVICES={visible!r})")
