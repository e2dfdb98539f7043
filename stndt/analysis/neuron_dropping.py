"""Neuron dropping (the paper's Fig. 5): how much do the models rely on the most-attended neurons?

For a grid of k, the model input of k held-in neurons is zeroed - on the val eval trials and on the train
trials whose rates fit the velocity decoder, since the paper drops *inputs* - and the resulting rates are
scored with nlb_tools' evaluate (stndt.evaluate.metrics.score) on the unchanged targets (held-out spikes,
behaviour, PSTHs and forward spikes are never touched). Neurons are dropped

* in descending order of the layer-1 spatial attention they receive in an STNDT member ('attention'), or
* in seeded random orders ('random').

Each STNDT member is paired with the NDT member of the same id (the same hyperparameter draw, see
stndt.train.members), which is fed exactly the same dropped inputs - the STNDT member's attention order
and the same random permutations - so the two architectures are compared on identical inputs. NDT is
optional: without NDT members only the STNDT rows are made.

Every file read is passed in explicitly (the val tensors, each set's ensemble.json for its ranking and
the members' best.pt), so the caller's list of inputs is the complete map of what the analysis reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from stndt.analysis.attention import model_attention, rank_by_attention, received_attention
from stndt.data.tensors import read_layout
from stndt.datasets import METRICS
from stndt.evaluate.metrics import load_targets, score
from stndt.io import atomic_path
from stndt.train.checkpoint import load_member
from stndt.train.data import PhaseTensors, load_phase_tensors
from stndt.train.inference import predict_log_rates, rates_dict

log = logging.getLogger(__name__)

MODEL_STNDT, MODEL_NDT = "STNDT", "NDT"
ORDER_ATTENTION, ORDER_RANDOM = "attention", "random"
ID_COLUMNS: tuple[str, ...] = ("model", "order", "member", "order_from", "seed", "k")


def dropping_grid(n_heldin: int, n_steps: int = 8) -> list[int]:
    """About `n_steps` numbers of dropped neurons from 0 to n_heldin (both included), evenly spaced."""
    if n_heldin < 1:
        raise ValueError(f"n_heldin={n_heldin}: need at least one held-in neuron")
    if n_steps < 2:
        raise ValueError(f"n_steps={n_steps}: need at least 2 (0 and all neurons)")
    return sorted({int(k) for k in np.rint(np.linspace(0, n_heldin, n_steps))})


def random_orders(n_heldin: int, n_random: int, seed: int, pair: int) -> list[np.ndarray]:
    """`n_random` random permutations of the held-in neurons for member pair `pair`, from `seed`."""
    children = np.random.SeedSequence([seed, pair]).spawn(n_random)
    return [np.random.default_rng(s).permutation(n_heldin) for s in children]


def drop_inputs(heldin: np.ndarray, neurons: Sequence[int]) -> np.ndarray:
    """Copy of held-in spikes (trials, bins, n_heldin) with the given neurons' columns set to zero."""
    out = np.array(heldin, dtype=np.float32, copy=True)
    out[..., np.asarray(list(neurons), dtype=np.int64)] = 0.0
    return out


def dropped_rates(model, p: PhaseTensors, neurons: Sequence[int], batch_size: int = 256, device: str = "cpu") -> dict:
    """{nlb_key: submission arrays} of a model whose inputs lack `neurons` on train and eval trials."""
    cfg = model.cfg
    kw = {"batch_size": batch_size, "device": device}
    train = predict_log_rates(model, drop_inputs(p.train_heldin, neurons), **kw)
    evals = predict_log_rates(model, drop_inputs(p.eval_heldin, neurons), **kw)
    return {p.nlb_key: rates_dict(train, evals, cfg.t_bins, cfg.n_heldin)}


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run torch and BLAS with `n` threads (None: leave them alone), restoring torch's setting after.

    Oversubscribed threads are very costly here: on a 2-core machine busy with other jobs a 2-thread
    forward pass of a small model took 80x longer than a 1-thread one, and evaluate()'s many small ridge
    fits suffer likewise. Parallelism comes from `n_jobs` processes instead.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


def _score(targets: dict, rates: dict, layout: str, bin_width_ms: int, threads: int | None) -> dict[str, float]:
    """score() in a worker (or in-process) with the analysis' thread limit."""
    with threadpool_limits(limits=threads) if threads else contextlib.nullcontext():
        return score(targets, rates, layout, bin_width_ms)


@dataclass(frozen=True)
class _Member:
    model_name: str  # MODEL_STNDT / MODEL_NDT
    member: str
    path: Path  # its best.pt


@dataclass(frozen=True)
class MemberSet:
    """One model's members as files: `ensemble` is the set's ensemble.json (its ranking by val co-bps and
    chosen members), `checkpoints` maps member id -> best.pt of the members that may be analysed."""

    ensemble: Path
    checkpoints: Mapping[str, Path]

    @classmethod
    def of(cls, ensemble: str | os.PathLike, checkpoints: Mapping[str, str | os.PathLike]) -> MemberSet:
        return cls(Path(ensemble), {str(m): Path(p) for m, p in checkpoints.items()})

    def checkpoint(self, member: str, model_name: str) -> Path:
        if member not in self.checkpoints:
            raise ValueError(
                f"{model_name} member {member} (ranked by {self.ensemble}) is needed but no checkpoint "
                f"was given for it (given: {', '.join(sorted(self.checkpoints)) or 'none'})"
            )
        return self.checkpoints[member]


def member_ranking(ensemble_json: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(ranking best first, chosen ensemble members) of a member set, from its ensemble.json."""
    ens = Path(ensemble_json)
    if not ens.exists():
        raise FileNotFoundError(f"{ens}: ensemble file does not exist")
    info = json.loads(ens.read_text())
    for key in ("ranking", "members"):
        if key not in info:
            raise KeyError(f"{ens}: missing '{key}'")
    return [str(m) for m in info["ranking"]], [str(m) for m in info["members"]]


def select_members(
    stndt: MemberSet, ndt: MemberSet | None = None, n_members: int | None = 3
) -> list[tuple[_Member, _Member | None]]:
    """(STNDT member, paired NDT member or None) pairs: the top `n_members` STNDT members by val co-bps
    (None: the chosen ensemble's members), each with the NDT member of the same id when its checkpoint is
    given, otherwise the NDT member of the same rank. `ndt` None: STNDT only."""
    ranking, chosen = member_ranking(stndt.ensemble)
    ids = chosen if n_members is None else ranking[:n_members]
    if not ids:
        raise ValueError(f"{stndt.ensemble}: no STNDT members to analyse")
    ndt_ranking = member_ranking(ndt.ensemble)[0] if ndt is not None else []
    if ndt is None:
        log.warning("no NDT members given; the dropping analysis covers STNDT only")
    pairs = []
    for rank, mid in enumerate(ids):
        st = _Member(MODEL_STNDT, mid, stndt.checkpoint(mid, MODEL_STNDT))
        nd = None
        if ndt is not None:
            nid = mid if mid in ndt.checkpoints else (ndt_ranking[rank] if rank < len(ndt_ranking) else None)
            if nid is not None:
                nd = _Member(MODEL_NDT, nid, ndt.checkpoint(nid, MODEL_NDT))
        pairs.append((st, nd))
    return pairs


def _score_inputs(
    model,
    ckpt: dict,
    p: PhaseTensors,
    targets: dict,
    layout: str,
    bin_width_ms: int,
    drop_sets: list[list[int]],
    n_jobs: int,
    threads: int | None,
    device: str,
) -> dict[frozenset, dict[str, float]]:
    """nlb_tools metrics of `model` for each distinct set of dropped neurons (order does not matter)."""
    distinct = list({frozenset(d): d for d in drop_sets}.items())
    bs = int(ckpt.get("train_config", {}).get("eval_batch_size", 256))
    # rates are made lazily in this process, so only a few input sets' rates are in memory at once
    tasks = (
        delayed(_score)(targets, dropped_rates(model, p, d, bs, device), layout, bin_width_ms, threads)
        for _, d in distinct
    )
    scores = Parallel(n_jobs=n_jobs, pre_dispatch="2*n_jobs")(tasks)
    return {key: metrics for (key, _), metrics in zip(distinct, scores)}


def neuron_dropping(
    tensors: str | os.PathLike,
    stndt: MemberSet,
    out_csv: str | os.PathLike | None,
    ndt: MemberSet | None = None,
    n_members: int | None = 3,
    n_random: int = 3,
    ks: Sequence[int] | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    threads: int | None = 1,
    device: str = "cpu",
) -> pd.DataFrame:
    """Run the dropping analysis on the val-phase tensors `tensors` and write the tidy table to `out_csv`.

    Rows: model (STNDT / NDT), order (attention / random), member, order_from (the STNDT member whose
    attention order / random permutations fed the inputs), seed (random permutation number; empty for
    attention), k (number of dropped held-in neurons), dropped (their indices, space separated) and the
    layout's metrics from nlb_tools. `ks` default: dropping_grid(n_heldin). Identical inputs (k = 0, or
    every neuron dropped) are scored once per member.

    Cost: one forward pass over the val phase's train + eval trials and one nlb_tools evaluate() per
    distinct input set; evaluate()'s ridge grid search dominates. `n_jobs` > 1 scores in that many
    processes (joblib) while the main process computes the next rates; `threads` limits torch and BLAS
    threads of every process (None: unchanged); `device` runs the models there (e.g. cuda). Results do
    not depend on n_jobs or threads.
    """
    tensors = Path(tensors)
    layout, bw = read_layout(tensors)
    p = load_phase_tensors(tensors)
    targets = load_targets(tensors)
    n_heldin = p.shapes["n_heldin"]
    ks = dropping_grid(n_heldin) if ks is None else sorted({int(k) for k in ks})
    if ks[0] < 0 or ks[-1] > n_heldin:
        raise ValueError(f"ks={ks}: every k must be in 0..{n_heldin} (held-in neurons)")
    if n_random < 0:
        raise ValueError(f"n_random={n_random}: must be >= 0")

    rows: list[dict] = []
    with _threads(threads):
        for pair, (st, nd) in enumerate(select_members(stndt, ndt, n_members)):
            st_model, st_ckpt = load_member(st.path, device)
            attn = model_attention(st_model, p.eval_heldin)
            order = rank_by_attention(received_attention(attn, st_model.cfg.n_heldin, layer=0))
            orders = [(ORDER_ATTENTION, None, order)]
            orders += [(ORDER_RANDOM, s, perm) for s, perm in enumerate(random_orders(n_heldin, n_random, seed, pair))]
            plan = [(name, s, k, [int(i) for i in perm[:k]]) for name, s, perm in orders for k in ks]
            members = [(st, st_model, st_ckpt)]
            if nd is not None:
                members.append((nd, *load_member(nd.path, device)))
            for m, model, ckpt in members:
                if model.cfg.n_heldin != n_heldin:
                    raise ValueError(
                        f"{m.path}: model has {model.cfg.n_heldin} held-in neurons, {tensors} has {n_heldin}"
                    )
                scores = _score_inputs(
                    model, ckpt, p, targets, layout, bw, [d for *_, d in plan], n_jobs, threads, device
                )
                for name, s, k, dropped in plan:
                    rows.append(
                        {
                            "model": m.model_name,
                            "order": name,
                            "member": m.member,
                            "order_from": st.member,
                            "seed": s,
                            "k": k,
                            "dropped": " ".join(map(str, dropped)),
                            **scores[frozenset(dropped)],
                        }
                    )
                log.info("neuron dropping: %s %s done (%d distinct inputs scored)", m.model_name, m.member, len(scores))
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    metrics = [c for c in METRICS if c in table.columns]
    table = table[[*ID_COLUMNS, "dropped", *metrics]]
    if out_csv is not None:
        with atomic_path(out_csv) as tmp:
            table.to_csv(tmp, index=False)
    return table
