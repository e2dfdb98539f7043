"""One plotting style for every figure, and an atomic PNG + PDF writer."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from stndt.io import atomic_path  # noqa: E402


def setup() -> None:
    sns.set_theme(context="paper", style="ticks", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.spines.top": False, "axes.spines.right": False})


def save(fig, png: str | Path, pdf: bool = True) -> None:
    """Save `fig` as PNG (and a PDF beside it), each atomically, then close it."""
    png = Path(png)
    targets = [png] + ([png.with_suffix(".pdf")] if pdf else [])
    for path in targets:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], bbox_inches="tight")
    plt.close(fig)
