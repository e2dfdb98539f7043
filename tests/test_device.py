"""stndt.train.device.keep_freed_memory: large tensors freed by one training step are reused by the
next without page faults (glibc otherwise unmaps every block above 32 MB on free)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    from stndt.train.device import keep_freed_memory
    took = keep_freed_memory() if sys.argv[1] == "keep" else None
    def step():  # a "training step": a few 64 MB activations (above glibc's largest mmap threshold)
        x = torch.ones(16 * 2**20)
        y = x * 2
        z = y + x
        return float(z[-1])
    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        step()
    print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    took, faults = out.stdout.split()
    return took, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_freed_tensor_memory_is_reused_without_page_faults():
    took, kept = _faults("keep")
    _, default = _faults("default")
    assert took == "True"
    pages = 20 * 3 * 64 * 2**20 // 4096  # 20 steps of three 64 MB tensors, touched page by page
    assert default > pages // 2  # glibc's default: every step faults its memory in afresh
    assert kept < pages // 4  # the heap grows a few times (glibc memalign), then steps reuse it
