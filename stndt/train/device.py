"""Where a member trains, and failing loudly when that place is missing.

A job that the scheduler gave a GPU but that finds no usable CUDA (a CPU build of PyTorch, a driver
mismatch, a node without the GPU it was promised) must not fall back to the CPU: one member would then
train for a day at a hundredth of the speed while looking healthy. `require_cuda` stops it in seconds.
"""

from __future__ import annotations

import ctypes
import os
import sys


class NoGPUError(RuntimeError):
    """A job was given a GPU but cannot use CUDA."""


def require_cuda(n_gpus: int = 1) -> None:
    """Raise NoGPUError naming the cause unless CUDA is usable with at least `n_gpus` devices."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            cause = (
                f"this PyTorch build ({torch.__version__}) has no CUDA support; install a CUDA build "
                "(pip: the default Linux wheel of torch is one; --sdm conda: envs/stndt.yaml installs it)"
            )
        else:
            cause = (
                f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU "
                f"(CUDA_VISIBLE_DEVICES={visible!r}; check the job's GPU request and the node's driver)"
            )
        raise NoGPUError(
            f"this job was given {n_gpus} GPU(s) but CUDA is not available: {cause}. "
            "Refusing to train on the CPU instead."
        )
    if torch.cuda.device_count() < n_gpus:
        raise NoGPUError(
            f"this job was given {n_gpus} GPU(s) but CUDA sees {torch.cuda.device_count()} "
            f"(CUDA_VISIBLE_DEVICES={visible!r})"
        )


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Make glibc malloc reuse freed tensor memory instead of handing it back to the OS (CPU training).

    glibc serves every block above its mmap threshold (at most 32 MB) with a fresh mmap and unmaps it
    on free, so a training step whose activations exceed 32 MB - a pack of MC_Maze-sized members, or
    one member with a larger batch - page-faults and zero-fills all of them again at every step. On
    this project's 2-core test machine that made a pack of 4 MC_Maze members 25% slower per member
    than training them one by one (benchmarks/pack.py --malloc-default); with every block from the
    heap and no trimming, the pack runs within 8% of the solo speed and the solo step itself gains up to
    20%. The process keeps its peak memory until it exits (a training job reaches it at every step
    anyway; the heap grows a few percent over the first steps, then stays). Returns False (and
    changes nothing) off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False


_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX-512 BF16 or AMX; Linux only).

    Why it matters: with these instructions bf16 autocast makes a training step about 1.5x faster than
    float32; without them (e.g. an AVX2-only CPU) PyTorch emulates bf16 and the same step is about 7x
    SLOWER (measured on a 2-core AMD EPYC with AVX2: 10 s against 1.4 s per epoch of the default config).
    So `bf16: null` (auto) uses it only where it pays.
    """
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in _NATIVE_BF16_FLAGS)
    except OSError:
        pass
    return False
