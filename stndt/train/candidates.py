"""A member's extra ensemble candidates during training (evaluation.candidates: checkpoints; see
stndt.candidates for the reference's pool and what is and is not reproduced).

Only when TrainConfig.candidate_checkpoints is set (the workflow sets it from the config's
`evaluation.candidates`), at every validation on the selection trials:

* the val unmasked loss (reference ``no_mask_loss``): from the log-rates validation already computes for
  co-bps, so it costs nothing more;
* the val contrastive loss (reference validation's ``contrast_loss``), for members with a contrastive
  term while it is on: two contrast-masked views of every val trial through the embedders (cheap next to
  a forward pass), masks drawn from the val-mask generator after the val masked loss's draws (so those are
  unchanged and the draw is still a pure function of (seed, epoch));
* the val masked loss is validation's own.

Each criterion's best weights (a strict improvement, NaN never, as the reference) are kept in the
member's state (`st["candidates"]`, saved in state.pt / pack_state.pt like the co-bps best), so a resumed
run decides exactly as an uninterrupted one. At the end `write_candidates` writes the rates of each
distinct extra checkpoint (stndt.candidates: candidates/rates_{val,test}.h5, candidates/candidates.json),
each file atomically. Without the setting nothing of this runs and no extra weights are kept.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from stndt.candidates import (
    CANDIDATES_DIR,
    CANDIDATES_FORMAT,
    CANDIDATES_JSON,
    COBPS,
    CONTRAST_LOSS,
    EXTRA_CRITERIA,
    MASKED_LOSS,
    UNMASKED_LOSS,
    rates_name,
)
from stndt.io import save_h5, write_json
from stndt.train.checkpoint import cpu_state_dict
from stndt.train.data import PhaseTensors
from stndt.train.inference import VAL_MASKED_NLL, phase_rates
from stndt.train.stopping import improved

VAL_UNMASKED_NLL = "val unmasked_nll"  # reference no_mask_loss
VAL_CONTRAST = "val contrast"  # reference validation contrast_loss (times lambda)
CRITERION_METRIC: dict[str, str] = {
    MASKED_LOSS: VAL_MASKED_NLL,
    UNMASKED_LOSS: VAL_UNMASKED_NLL,
    CONTRAST_LOSS: VAL_CONTRAST,
}


def unmasked_nll(eval_log_rates: np.ndarray, heldin: np.ndarray, t_bins: int, n_heldin: int) -> float:
    """The reference's val unmasked loss: mean Poisson NLL exp(r) - y r over every held-in entry of the
    trial bins, the input unmasked (held-out neurons and forward bins are not scored). inf when not finite."""
    r = eval_log_rates[:, :t_bins, :n_heldin].astype(np.float64)
    y = np.asarray(heldin, dtype=np.float64)
    value = float(np.mean(np.exp(r) - y * r)) if r.size else math.inf
    return value if math.isfinite(value) else math.inf


@torch.no_grad()
def val_contrast(
    model: torch.nn.Module,
    heldin: np.ndarray,
    obj_cfg: Any,
    epoch: int,
    generator: torch.Generator,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
) -> float:
    """The reference's val contrastive loss: per batch of `batch_size` val trials (the training batch
    size, as its val loader), two views masked like the training step's contrast views (span width from
    the current ramp), NT-Xent of the temporal and spatial embedder outputs, per anchor, times lambda;
    the mean over all anchors of all batches (one pool, like the reference's concatenation). Eval mode."""
    from stndt.model.masking import draw_span_width, mask_heldin, span_expand_prob
    from stndt.model.objective import nt_xent

    cfg = model.cfg
    device = torch.device(device)
    heldin = np.asarray(heldin, dtype=np.float32)
    expand = span_expand_prob(epoch, obj_cfg.mask_span_ramp_start, obj_cfg.mask_span_ramp_end)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for i in range(0, len(heldin), batch_size):
            hin = torch.from_numpy(heldin[i : i + batch_size]).to(device)
            views = []
            for _ in range(2):
                w = draw_span_width(obj_cfg.contrast_max_span, expand, generator)
                v, _ = mask_heldin(
                    hin,
                    obj_cfg.contrast_mask_ratio,
                    obj_cfg.contrast_token_ratio,
                    obj_cfg.contrast_random_ratio,
                    w,
                    generator,
                    obj_cfg.mask_span_mode,
                )
                views.append(torch.nn.functional.pad(v, (0, cfg.n_heldout, 0, cfg.t_forward)))
            temporal, spatial = model.embed(torch.cat(views))
            loss = nt_xent(temporal.flatten(1), obj_cfg.temperature)
            if spatial is not None:
                loss = loss + nt_xent(spatial.flatten(1), obj_cfg.temperature)
            n_anchors = 2 * hin.shape[0]
            total += float(loss.double().item()) * n_anchors
            count += n_anchors
    finally:
        model.train(was_training)
    value = obj_cfg.contrast_lambda * total / max(1, count)
    return value if math.isfinite(value) else math.inf


def tracks_contrast(obj_cfg: Any) -> bool:
    """Whether the member has a contrastive term whose val loss can be a criterion."""
    return bool(obj_cfg.contrastive and obj_cfg.contrast_lambda > 0)


def candidate_metrics(
    m, eval_log_rates: np.ndarray, heldin: np.ndarray, generator: torch.Generator, epoch: int, device: torch.device
) -> dict[str, float]:
    """The extra validation numbers of the candidate criteria (m: stndt.train.setup.Member holding the
    weights; `generator`: the val-mask generator after the val masked loss's draws)."""
    out = {VAL_UNMASKED_NLL: unmasked_nll(eval_log_rates, heldin, m.model_cfg.t_bins, m.model_cfg.n_heldin)}
    if tracks_contrast(m.obj_cfg) and m.obj_cfg.contrast_active(epoch):
        out[VAL_CONTRAST] = val_contrast(
            m.model, heldin, m.obj_cfg, epoch, generator, device=device, batch_size=m.train_cfg.batch_size
        )
    return out


def track(m, st: dict[str, Any], metrics: dict[str, float], epoch: int) -> None:
    """Keep m.model's weights for every criterion that strictly improved at this validation (one copy
    shared by all that did, and the co-bps best's when that improved too)."""
    kept = st.setdefault("candidates", {})
    weights = st["best"]["weights"] if st["best"]["epoch"] == epoch else None
    for criterion, metric in CRITERION_METRIC.items():
        if metric not in metrics:
            continue
        best = kept.get(criterion, {}).get("value", math.inf)
        if improved(metrics[metric], best, lower_is_better=True):
            if weights is None:
                weights = cpu_state_dict(m.model)
            kept[criterion] = {"epoch": epoch, "value": float(metrics[metric]), "weights": weights}


def not_tracked(m) -> dict[str, str]:
    """Criteria this member cannot have, and why."""
    return (
        {}
        if tracks_contrast(m.obj_cfg)
        else {CONTRAST_LOSS: "no contrastive term (contrastive false or contrast_lambda 0): no val contrastive loss"}
    )


def candidate_summary(m, st: dict[str, Any]) -> dict[str, Any]:
    """candidates.json: each criterion's best epoch and value, which earlier checkpoint it duplicates
    (`same_as`: cobps or an earlier criterion, same epoch = same weights) and the distinct ones written."""
    kept = st.get("candidates", {})
    epochs = {COBPS: st["best"]["epoch"]}
    criteria, written = {}, []
    for criterion in EXTRA_CRITERIA:
        if criterion not in kept:
            continue
        e = kept[criterion]["epoch"]
        same = next((c for c, ce in epochs.items() if ce == e), None)
        criteria[criterion] = {
            "epoch": e,
            "metric": CRITERION_METRIC[criterion],
            "value": kept[criterion]["value"],
            "same_as": same,
        }
        if same is None:
            written.append(criterion)
        epochs.setdefault(criterion, e)
    missing = {
        c: "never validated while it applied (e.g. the contrastive term was not yet on)"
        for c in EXTRA_CRITERIA
        if c not in kept
    }
    missing.update(not_tracked(m))
    return {
        "format": CANDIDATES_FORMAT,
        "cobps_epoch": st["best"]["epoch"],
        "criteria": criteria,
        "written": written,
        "not_tracked": missing,
    }


def write_candidates(
    m, st: dict[str, Any], val: PhaseTensors, test: PhaseTensors | None, device: torch.device
) -> dict[str, Any]:
    """Write the member's candidates folder (rates of each distinct extra checkpoint, then candidates.json)
    and return the summary; leaves m.model holding the last written candidate's weights."""
    folder = m.out_dir / CANDIDATES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    summary = candidate_summary(m, st)
    kw = {"device": device, "batch_size": m.train_cfg.eval_batch_size}
    for phase, tensors in (("val", val), ("test", test)):
        if tensors is None:
            continue
        rates = {}  # one phase at a time: at most (distinct candidates) x one phase's rates in memory
        for criterion in summary["written"]:
            m.model.load_state_dict(st["candidates"][criterion]["weights"])
            rates[criterion] = phase_rates(m.model, tensors, **kw)
        save_h5(folder / rates_name(phase), rates)
    write_json(folder / CANDIDATES_JSON, summary)
    m.log.info("candidates: %s", {c: (v["epoch"], v["same_as"]) for c, v in summary["criteria"].items()})
    return summary
