"""A member's output folder: what train_member (and a pack, for each of its members) writes there.

best.pt, params.json, train_log.csv, rates_val.h5, rates_test.h5 (OUTPUT_FILES) are written only at
the end, each atomically, rates last; `clear_outputs` removes earlier ones first, so none can outlive
a failed or killed run and pass for its result (the extra ensemble candidates' folder, candidates/, too:
stndt.train.candidates writes it before these when TrainConfig.candidate_checkpoints is set). train.log
collects the member's log messages.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from stndt.candidates import CANDIDATES_DIR, candidate_files
from stndt.datasets import PHASES
from stndt.io import atomic_path, save_h5, write_json
from stndt.members import MASKED_NLL, OUTPUT_FILES
from stndt.train.checkpoint import MEMBER_FORMAT, STATE_FILE, save_torch
from stndt.train.data import PhaseTensors
from stndt.train.inference import VAL_CO_BPS, VAL_MASKED_NLL, VAL_NLL, phase_rates

LOG_COLUMNS: tuple[str, ...] = (
    "epoch",
    "step",
    "loss",
    MASKED_NLL,
    "contrast",
    "lr",
    VAL_CO_BPS,
    VAL_NLL,
    "time_s",
    VAL_MASKED_NLL,
)
# Columns that measure wall-clock time: the only ones allowed to differ between identical runs.
TIMING_COLUMNS: tuple[str, ...] = ("time_s",)
LOG_FILE = "train.log"


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return str(value)


def log_csv_text(rows: list[dict[str, Any]]) -> str:
    """train_log.csv: LOG_COLUMNS, one row per epoch (epoch 0: the untrained model's validation)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LOG_COLUMNS)
    for row in rows:
        writer.writerow([_format(row.get(c)) for c in LOG_COLUMNS])
    return buf.getvalue()


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def attach_file_log(logger: logging.Logger, path: Path) -> logging.Handler:
    """Append `logger`'s messages (INFO and up) to `path`; remove the returned handler when done."""
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def clear_outputs(out_dir: Path, state_files: Sequence[str] = (STATE_FILE,)) -> None:
    """Remove earlier outputs (they are rewritten at the end, so none can outlive a failed or killed
    run and pass for its result) and temp files orphaned by a kill -9 in the middle of a write of an
    output or of one of `state_files`."""
    for name in OUTPUT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    for name in (*OUTPUT_FILES, *state_files):
        for tmp in out_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    extra = out_dir / CANDIDATES_DIR  # the extra ensemble candidates (stndt.train.candidates), if any
    for name in candidate_files(PHASES):
        (extra / name).unlink(missing_ok=True)
        for tmp in extra.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def write_member_outputs(
    out_dir: Path,
    model: torch.nn.Module,
    best: dict[str, Any],
    configs: dict[str, Any],
    params: dict[str, Any],
    summary: dict[str, Any],
    rows: list[dict[str, Any]],
    val: PhaseTensors,
    test: PhaseTensors | None,
    *,
    device: torch.device,
    eval_batch_size: int,
) -> None:
    """best.pt, params.json, train_log.csv, then rates_val.h5 / rates_test.h5 of `model`, which holds
    the best weights (`best`: epoch, val metrics, weights)."""
    ckpt = {
        "format": MEMBER_FORMAT,
        "model": best["weights"],
        "model_config": configs["model"],
        "objective_config": configs["objective"],
        "train_config": configs["train"],
        "epoch": best["epoch"],
        "metrics": {VAL_CO_BPS: best[VAL_CO_BPS], VAL_NLL: best[VAL_NLL]},
    }
    save_torch(out_dir / "best.pt", ckpt)
    flat: dict[str, Any] = {}
    for section in ("model", "objective", "train"):
        flat.update(configs[section])
    write_json(
        out_dir / "params.json",
        {
            "hyperparameters": flat,  # every resolved setting, flat (one members.csv row)
            **configs,
            "given": params,  # the params passed in (sampled + fixed)
            "training": summary,
        },
    )
    write_text(out_dir / "train_log.csv", log_csv_text(rows))
    # Inference in float32 even when training used bf16: cheap, and rates keep full precision.
    kw = {"device": device, "batch_size": eval_batch_size}
    save_h5(out_dir / "rates_val.h5", phase_rates(model, val, **kw))
    if test is not None:
        save_h5(out_dir / "rates_test.h5", phase_rates(model, test, **kw))
