"""Commands of the training stage: train a member (or a pack) and propose a Bayesian-search wave."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from stndt.commands import command, keyed
from stndt.members import SEARCH_METHODS


def _train_args(p):
    p.add_argument("--val", required=True, type=Path, help="val-phase tensors (training and validation)")
    p.add_argument("--test", type=Path, help="test-phase tensors (rates for the submission)")
    p.add_argument(
        "--out",
        required=True,
        nargs="+",
        type=Path,
        help="member folder(s): several members are trained together as one pack on one device",
    )
    p.add_argument(
        "--params",
        required=True,
        help="JSON: the member's resolved hyperparameters and training settings (incl. its seed), "
        "as the workflow resolves them (stndt.train.members.resolve_member); a list of them, "
        "one per --out folder, for a pack",
    )
    p.add_argument("--truth", type=Path, help="truth.h5 of a synthetic dataset (adds rate R2 to the scores)")
    p.add_argument(
        "--gpus", type=int, default=0, help="GPUs this job was given: > 0 requires CUDA and fails at once without it"
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--summary", type=Path, help="JSON written last: every member's training summary")


@command("train", "train members (one, or a pack on one device), resuming from their saved state; score each on val")(
    _train_args
)
def _train(a):
    from stndt.evaluate.pipeline import score_rates
    from stndt.train.device import require_cuda
    from stndt.train.pack.train import train_pack

    given = json.loads(a.params)
    params_list = given if isinstance(given, list) else [given]
    if len(params_list) != len(a.out):
        raise ValueError(f"--params holds {len(params_list)} member(s) for {len(a.out)} --out folder(s)")
    if a.gpus > 0:
        require_cuda(a.gpus)
    for params in params_list:
        if a.gpus > 0:
            params["device"] = "cuda"
        if a.threads:
            params["num_threads"] = a.threads
    summaries = train_pack(a.val, a.test, a.out, params_list, progress=True)
    for out, summary in zip(a.out, summaries):
        # Scored here, on the node that already holds the rates, not by a job of its own.
        score_rates(out / "rates_val.h5", a.val, out / "metrics_val.json", a.truth)
        logging.getLogger("stndt").info("member %s done: %s", out, json.dumps(summary, default=str))
    if a.summary:
        from stndt.io import write_json

        write_json(a.summary, {"members": [str(o) for o in a.out], "training": summaries})


def _wave_args(p):
    p.add_argument("--space", required=True, help="JSON: the dataset's resolved search space")
    p.add_argument(
        "--params",
        nargs=2,
        action="append",
        default=[],
        metavar=("MEMBER", "JSON"),
        help="params.json of a finished member of the earlier waves (repeated)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wave", type=int, required=True)
    p.add_argument("--wave-size", type=int, required=True)
    p.add_argument("--method", default="bayes", choices=SEARCH_METHODS)
    p.add_argument("--out", required=True, type=Path, help="JSON: the wave's members and their sampled values")


@command("propose-wave", "propose the next wave of members from the finished ones' val co-bps")(_wave_args)
def _propose_wave(a):
    from stndt.io import write_json
    from stndt.members import member_id
    from stndt.train.search.waves import completed_members, propose_wave, wave_indices

    space = json.loads(a.space)
    completed = completed_members(keyed(a.params, "--params"), space)
    proposals = propose_wave(space, a.seed, a.wave, a.wave_size, completed, a.method)
    members = {member_id(i): p for i, p in zip(wave_indices(a.wave, a.wave_size), proposals)}
    write_json(
        a.out, {"wave": a.wave, "method": a.method, "seed": a.seed, "completed": len(completed), "members": members}
    )
