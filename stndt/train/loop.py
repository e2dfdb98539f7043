"""Train one ensemble member: resumable, reproducible, and writing the NLB submission-format rates.

One call of `train_member` does the whole job of a member:
  read the val-phase tensors -> train (AdamW, warm-up + cosine, gradient clipping, optional bf16)
  -> keep the weights with the best val co-bps (nlb_tools bits_per_spike on held-out neurons of the
  val trials, every `val_every` epochs); early stopping by stndt.train.stopping.should_stop: with the
  published rule (stop_rule "both") when val co-bps AND the val masked loss (`val_masked_nll`, the
  reference's "val loss") have both stalled for more than `patience` epochs
  -> write best.pt, params.json, train_log.csv, rates_val.h5, rates_test.h5 into out_dir.

Reproducibility: every random draw comes from generators seeded from TrainConfig.seed - model init,
batch order (CPU generator), masks (generator on the training device), dropout (torch's global RNG,
re-seeded), val masks (a generator re-seeded from the seed and the epoch at each validation, so it
needs no saved state). Their states, the model, optimiser, epoch counter, best weights and log rows are saved
atomically to out_dir/state.pt at epoch boundaries (every `checkpoint_every_epochs` epochs or
`checkpoint_every_s` seconds). A job killed at any point and re-run resumes from that state and ends
with bitwise the same outputs on the same machine as an uninterrupted run (wall-clock columns aside).
The final outputs are written only at the end, each atomically, rates last.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np
import torch

from stndt.datasets import CO_BPS, nlb_key
from stndt.io import atomic_path, save_h5, write_json
from stndt.train.checkpoint import (
    MEMBER_FORMAT,
    STATE_FORMAT,
    capture_rng,
    cpu_state_dict,
    fingerprint,
    load_torch,
    restore_rng,
    save_torch,
)
from stndt.train.config import TrainConfig
from stndt.train.search_space import split_params
from stndt.train.stopping import improved, should_stop

log = logging.getLogger("stndt.train")

VAL_CO_BPS = f"val {CO_BPS}"
VAL_NLL = "val nll"
# The reference's val masked loss (what its published stopping rule tracks); see val_masked_nll.
VAL_MASKED_NLL = "val masked_nll"
LOG_COLUMNS: tuple[str, ...] = (
    "epoch", "step", "loss", "masked_nll", "contrast", "lr", VAL_CO_BPS, VAL_NLL, "time_s", VAL_MASKED_NLL,
)
# Columns that measure wall-clock time: the only ones allowed to differ between identical runs.
TIMING_COLUMNS: tuple[str, ...] = ("time_s",)
OUTPUT_FILES: tuple[str, ...] = ("best.pt", "params.json", "train_log.csv", "rates_val.h5", "rates_test.h5")
STATE_FILE = "state.pt"
# TrainConfig fields that change how a job runs but not what it computes (excluded from the
# fingerprint, so changing them does not discard a saved state).
_RUN_ONLY_FIELDS = ("device", "eval_batch_size", "num_threads", "checkpoint_every_epochs",
                    "checkpoint_every_s", "keep_state")
_TENSOR_KEYS = ("train_spikes_heldin", "train_spikes_heldout", "train_spikes_heldin_forward",
                "train_spikes_heldout_forward", "eval_spikes_heldin")


# ----------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class PhaseTensors:
    """One phase's tensors file, as arrays (trials, bins, neurons)."""

    path: Path
    nlb_key: str
    train_heldin: np.ndarray
    train_heldout: np.ndarray
    train_heldin_forward: np.ndarray
    train_heldout_forward: np.ndarray
    eval_heldin: np.ndarray
    eval_heldout: np.ndarray | None  # targets/{nlb_key}/eval_spikes_heldout when present

    @property
    def shapes(self) -> dict[str, int]:
        return {
            "n_heldin": int(self.train_heldin.shape[2]),
            "n_heldout": int(self.train_heldout.shape[2]),
            "t_bins": int(self.train_heldin.shape[1]),
            "t_forward": int(self.train_heldin_forward.shape[1]),
        }


def _attr(f: h5py.File, name: str, path: Path) -> Any:
    if name not in f.attrs:
        raise ValueError(f"{path}: missing file attribute '{name}' (expected layout, bin_width_ms, phase)")
    value = f.attrs[name]
    if isinstance(value, bytes):
        value = value.decode()
    return value.item() if isinstance(value, np.generic) else value


def load_phase_tensors(path: str | Path, need_eval_heldout: bool = False) -> PhaseTensors:
    """Read and check a `{ds}/tensors/{phase}.h5` file; errors name the file and key."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: tensors file does not exist")
    with h5py.File(path, "r") as f:
        key = nlb_key(str(_attr(f, "layout", path)), int(_attr(f, "bin_width_ms", path)))
        arrays = {}
        for k in _TENSOR_KEYS:
            if k not in f or not isinstance(f[k], h5py.Dataset):
                raise ValueError(f"{path}: missing dataset '{k}'")
            arrays[k] = np.asarray(f[k][()], dtype=np.float32)
        eval_heldout = None
        target = f"targets/{key}/eval_spikes_heldout"
        if target in f:
            eval_heldout = np.asarray(f[target][()], dtype=np.float32)
        elif "eval_spikes_heldout" in f:
            eval_heldout = np.asarray(f["eval_spikes_heldout"][()], dtype=np.float32)
    if need_eval_heldout and eval_heldout is None:
        raise ValueError(f"{path}: missing '{target}' (held-out spikes of the eval trials, needed for validation)")
    for k, a in arrays.items():
        if a.ndim != 3:
            raise ValueError(f"{path}: '{k}' must be 3-D (trials, bins, neurons), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{path}: '{k}' has NaN/inf entries")
    tin, tout = arrays["train_spikes_heldin"], arrays["train_spikes_heldout"]
    fin, fout = arrays["train_spikes_heldin_forward"], arrays["train_spikes_heldout_forward"]
    ein = arrays["eval_spikes_heldin"]
    checks = [
        ("train_spikes_heldout", tout.shape[:2], tin.shape[:2]),
        ("train_spikes_heldin_forward", (fin.shape[0], fin.shape[2]), (tin.shape[0], tin.shape[2])),
        ("train_spikes_heldout_forward", (fout.shape[0], fout.shape[1], fout.shape[2]),
         (tin.shape[0], fin.shape[1], tout.shape[2])),
        ("eval_spikes_heldin", ein.shape[1:], tin.shape[1:]),
    ]
    if eval_heldout is not None:
        checks.append((target, eval_heldout.shape, (ein.shape[0], ein.shape[1], tout.shape[2])))
    for name, got, want in checks:
        if tuple(got) != tuple(want):
            raise ValueError(f"{path}: '{name}' has shape {tuple(got)} where {tuple(want)} was expected "
                             "(trials / bins / neurons inconsistent with train_spikes_heldin)")
    return PhaseTensors(path, key, tin, tout, fin, fout, ein, eval_heldout)


def full_counts(p: PhaseTensors) -> np.ndarray:
    """Training targets (trials, T + T_fp, N_in + N_out): held-in | held-out, trial bins then forward."""
    trial = np.concatenate([p.train_heldin, p.train_heldout], axis=2)
    forward = np.concatenate([p.train_heldin_forward, p.train_heldout_forward], axis=2)
    return np.concatenate([trial, forward], axis=1)


def model_input(heldin: np.ndarray, n_heldout: int, t_forward: int) -> np.ndarray:
    """Held-in spikes padded with zero held-out columns and zero forward bins (what the model sees)."""
    return np.pad(heldin, ((0, 0), (0, t_forward), (0, n_heldout)))


# --------------------------------------------------------------------------------------- schedule etc.
def lr_factor(epoch: int, warmup_epochs: int, max_epochs: int) -> float:
    """Learning-rate multiplier while training epoch `epoch` (0-based).

    Linear warm-up over `warmup_epochs` (reaching 1 at the last warm-up epoch, never 0), then cosine
    decay to 0 at `max_epochs` - the reference's WarmupCosineSchedule, stepped once per epoch.
    """
    if epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1)
    progress = (epoch - warmup_epochs) / max(1, max_epochs - warmup_epochs)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"TrainConfig.device={name!r} but CUDA is not available")
    return device


def _derived_seeds(seed: int) -> dict[str, int]:
    """Independent seeds for each random stream, all from the member seed."""
    names = ("init", "dropout", "batch", "mask", "val_mask")  # append only: spawn keys are positional
    states = np.random.SeedSequence(seed).spawn(len(names))
    return {n: int(s.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for n, s in zip(names, states)}


def val_mask_seed(base: int, epoch: int) -> int:
    """Seed of the val-mask generator at the validation after `epoch` epochs: a fresh mask at every
    validation (as the reference, which draws val masks from the global RNG), yet a pure function of
    (seed, epoch), so resuming needs no generator state."""
    return (int(base) + int(epoch)) % (1 << 63)


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def predict_log_rates(model: torch.nn.Module, heldin: np.ndarray, *, device: torch.device | str = "cpu",
                      batch_size: int = 256, bf16: bool = False) -> np.ndarray:
    """Log-rates (trials, T + T_fp, N_in + N_out) float32 for held-in spikes (trials, T, N_in)."""
    cfg = model.cfg
    device = torch.device(device)
    x = model_input(np.asarray(heldin, dtype=np.float32), cfg.n_heldout, cfg.t_forward)
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        batch = torch.from_numpy(x[i:i + batch_size]).to(device)
        with _autocast(device, bf16):
            out.append(model(batch).float().cpu().numpy())
    model.train(was_training)
    if not out:
        return np.zeros((0, cfg.n_time, cfg.n_neurons), dtype=np.float32)
    return np.concatenate(out, axis=0)


def validation_metrics(eval_log_rates: np.ndarray, eval_heldout: np.ndarray, t_bins: int,
                       n_heldin: int) -> dict[str, float]:
    """Val co-bps (nlb_tools bits_per_spike) and Poisson NLL per entry on held-out neurons' trial bins."""
    from nlb_tools.evaluation import bits_per_spike, neg_log_likelihood

    rates = np.exp(eval_log_rates[:, :t_bins, n_heldin:].astype(np.float64))
    spikes = eval_heldout.astype(np.float64)
    if not np.isfinite(rates).all():  # diverged model: never "best", and nlb_tools would assert
        return {VAL_CO_BPS: -math.inf, VAL_NLL: math.inf}
    nll = neg_log_likelihood(rates, spikes, zero_warning=False) / max(1, int(np.isfinite(spikes).sum()))
    return {VAL_CO_BPS: float(bits_per_spike(rates, spikes)), VAL_NLL: float(nll)}


@torch.no_grad()
def val_masked_nll(model: torch.nn.Module, heldin: np.ndarray, heldout: np.ndarray, obj_cfg: Any,
                   generator: torch.Generator, *, device: torch.device | str = "cpu",
                   batch_size: int = 64) -> float:
    """The reference's val masked loss (runner.py's `val_loss`, which its stopping rule tracks).

    On the val eval trials, in eval mode and float32, exactly as trungle93/STNDT computes it: held-in
    spikes (trials, T, N_in) masked like a training batch at `mask_ratio` but never in spans (its
    validation passes no expand_prob, so the width is 1), mask token / random counts as in training;
    the Poisson NLL exp(r) - y r pooled over ALL batches' entries (one mean, not a mean of batch means)
    of: masked held-in entries, every held-out entry of the trial bins, and every entry (held-in and
    held-out) of the forward bins with target 0 - the reference's val file has no eval forward spikes
    (make_eval_input_tensors writes none), so its dataset fills them with zeros. `batch_size` should be
    the training batch size (the reference's val loader uses it; random mask counts depend on each
    batch's maximum). Returns inf for a diverged (non-finite) model, so it never counts as a best.
    """
    from stndt.model.masking import mask_heldin
    from stndt.model.objective import poisson_nll

    cfg = model.cfg
    device = torch.device(device)
    heldin = np.asarray(heldin, dtype=np.float32)
    heldout = np.asarray(heldout, dtype=np.float32)
    t_bins, n_heldin = heldin.shape[1], heldin.shape[2]
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    try:
        for i in range(0, len(heldin), batch_size):
            hin = torch.from_numpy(heldin[i:i + batch_size]).to(device)
            hout = torch.from_numpy(heldout[i:i + batch_size]).to(device)
            masked, mask = mask_heldin(hin, obj_cfg.mask_ratio, obj_cfg.mask_token_ratio,
                                       obj_cfg.mask_random_ratio, 1, generator)
            x = torch.nn.functional.pad(masked, (0, cfg.n_heldout, 0, cfg.t_forward))
            log_rates = model(x).float()
            total += poisson_nll(log_rates[:, :t_bins, :n_heldin], hin)[mask].double().sum()
            total += poisson_nll(log_rates[:, :t_bins, n_heldin:], hout).double().sum()
            total += torch.exp(log_rates[:, t_bins:]).double().sum()  # target 0: exp(r) - 0 * r
            count += int(mask.sum().item()) + hout.numel() + log_rates[:, t_bins:].numel()
    finally:
        model.train(was_training)
    value = float(total.item()) / max(1, count)
    return value if math.isfinite(value) else math.inf


def rates_dict(train_log_rates: np.ndarray, eval_log_rates: np.ndarray, t_bins: int,
               n_heldin: int) -> dict[str, np.ndarray]:
    """NLB submission arrays (spikes per bin, float32) from train / eval trials' log-rates."""
    tr = np.exp(train_log_rates[:, :t_bins].astype(np.float64)).astype(np.float32)
    ev = np.exp(eval_log_rates.astype(np.float64)).astype(np.float32)
    return {
        "train_rates_heldin": tr[:, :, :n_heldin],
        "train_rates_heldout": tr[:, :, n_heldin:],
        "eval_rates_heldin": ev[:, :t_bins, :n_heldin],
        "eval_rates_heldout": ev[:, :t_bins, n_heldin:],
        "eval_rates_heldin_forward": ev[:, t_bins:, :n_heldin],
        "eval_rates_heldout_forward": ev[:, t_bins:, n_heldin:],
    }


def phase_rates(model: torch.nn.Module, p: PhaseTensors, *, device: torch.device | str = "cpu",
                batch_size: int = 256, bf16: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """{nlb_key: submission arrays} of one phase's train and eval trials."""
    cfg = model.cfg
    train = predict_log_rates(model, p.train_heldin, device=device, batch_size=batch_size, bf16=bf16)
    evals = predict_log_rates(model, p.eval_heldin, device=device, batch_size=batch_size, bf16=bf16)
    return {p.nlb_key: rates_dict(train, evals, cfg.t_bins, cfg.n_heldin)}


# ------------------------------------------------------------------------------------------- outputs
def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return str(value)


def log_csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LOG_COLUMNS)
    for row in rows:
        writer.writerow([_format(row.get(c)) for c in LOG_COLUMNS])
    return buf.getvalue()


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _attach_file_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    return handler


# -------------------------------------------------------------------------------------------- training
def train_member(tensors_val: str | Path, tensors_test: str | Path | None, out_dir: str | Path,
                 params: Mapping[str, Any], *, progress: bool | None = None) -> dict[str, Any]:
    """Train one member from flat hyperparameters `params` and write its outputs into `out_dir`.

    `params` holds any fields of ModelConfig / ObjectiveConfig / TrainConfig by name (e.g. a
    sample_params() draw merged with fixed settings such as max_epochs and seed); shapes come from
    the val tensors file. `tensors_test=None` skips rates_test.h5. `progress`: tqdm bar (None = only
    on a terminal). Returns a summary (best epoch, val co-bps, epochs run, stop reason, timing).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out_dir)
    handler = _attach_file_log(out_dir / "train.log")
    try:
        return _train_member(Path(tensors_val), None if tensors_test is None else Path(tensors_test),
                             out_dir, dict(params), progress)
    except BaseException:
        log.exception("training failed")
        raise
    finally:
        log.removeHandler(handler)
        handler.close()


def _train_member(tensors_val: Path, tensors_test: Path | None, out_dir: Path, params: dict[str, Any],
                  progress: bool | None) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from stndt.model.objective import training_loss
    from stndt.model.stndt import STNDT, n_parameters

    val = load_phase_tensors(tensors_val, need_eval_heldout=True)
    test = None
    if tensors_test is not None:
        test = load_phase_tensors(tensors_test)
        if test.shapes != val.shapes:
            raise ValueError(f"{tensors_test}: shapes {test.shapes} differ from the val-phase file "
                             f"{tensors_val} ({val.shapes}); both phases must have the same bins and neurons")
    model_cfg, obj_cfg, train_cfg = split_params(params, val.shapes)
    if train_cfg.num_threads is not None:
        torch.set_num_threads(train_cfg.num_threads)
    device = resolve_device(train_cfg.device)
    bf16 = (device.type == "cuda") if train_cfg.bf16 is None else bool(train_cfg.bf16)
    configs = {"model": asdict(model_cfg), "objective": asdict(obj_cfg), "train": asdict(train_cfg)}
    identity = {
        "model": configs["model"], "objective": configs["objective"],
        "train": {k: v for k, v in configs["train"].items() if k not in _RUN_ONLY_FIELDS},
        "device_type": device.type, "bf16": bf16,
    }
    run_id = fingerprint(identity, [tensors_val, tensors_test])
    log.info("member %s: device=%s bf16=%s shapes=%s", out_dir, device, bf16, val.shapes)

    seeds = _derived_seeds(train_cfg.seed)
    torch.manual_seed(seeds["init"])
    model = STNDT(model_cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay,
                                  eps=train_cfg.adam_eps)
    torch.manual_seed(seeds["dropout"])
    generators = {
        "batch": torch.Generator(device="cpu").manual_seed(seeds["batch"]),
        "mask": torch.Generator(device=device).manual_seed(seeds["mask"]),
    }
    log.info("model: %d parameters", n_parameters(model))

    data = torch.from_numpy(full_counts(val)).to(device)
    n_train = data.shape[0]
    if n_train == 0:
        raise ValueError(f"{tensors_val}: no training trials")

    state_path = out_dir / STATE_FILE
    st = _load_state(state_path, run_id)
    if st is not None:
        model.load_state_dict(st["model"])
        optimizer.load_state_dict(st["optimizer"])
        restore_rng(st["rng"], generators)
        log.info("resumed from %s at epoch %d", state_path, st["epoch"])
    else:
        st = {"format": STATE_FORMAT, "fingerprint": run_id, "epoch": 0, "step": 0, "elapsed_s": 0.0,
              "best": {"epoch": -1, VAL_CO_BPS: -math.inf, VAL_NLL: math.inf, "weights": None},
              # last strict improvement of the val masked loss (stop_rule "both"; saved for exact resume)
              "best_loss": {"epoch": -1, VAL_MASKED_NLL: math.inf},
              "log": [], "done": False, "stop_reason": ""}

    def validate(epoch: int) -> dict[str, float]:
        lr_eval = predict_log_rates(model, val.eval_heldin, device=device,
                                    batch_size=train_cfg.eval_batch_size)
        m = validation_metrics(lr_eval, val.eval_heldout, model_cfg.t_bins, model_cfg.n_heldin)
        gen = torch.Generator(device=device).manual_seed(val_mask_seed(seeds["val_mask"], epoch))
        m[VAL_MASKED_NLL] = val_masked_nll(model, val.eval_heldin, val.eval_heldout, obj_cfg, gen,
                                           device=device, batch_size=train_cfg.batch_size)
        return m

    def consider(metrics: dict[str, float], epoch: int) -> None:
        if metrics[VAL_CO_BPS] > st["best"][VAL_CO_BPS] or st["best"]["weights"] is None:
            st["best"] = {"epoch": epoch, **metrics, "weights": cpu_state_dict(model)}
            log.info("epoch %d: new best %s %.5f", epoch, VAL_CO_BPS, metrics[VAL_CO_BPS])
        if improved(metrics[VAL_MASKED_NLL], st["best_loss"][VAL_MASKED_NLL], lower_is_better=True):
            st["best_loss"] = {"epoch": epoch, VAL_MASKED_NLL: metrics[VAL_MASKED_NLL]}

    def save_state() -> None:
        st["model"] = cpu_state_dict(model)
        st["optimizer"] = optimizer.state_dict()
        st["rng"] = capture_rng(generators)
        save_torch(state_path, st)

    if st["epoch"] == 0 and not st["log"]:
        # Validate the untrained model so a best checkpoint exists even if training diverges at once.
        m = validate(0)
        consider(m, 0)
        st["log"].append({"epoch": 0, "step": 0, **{c: None for c in ("loss", "masked_nll", "contrast", "lr")},
                          **m, "time_s": 0.0})

    bar = tqdm(total=train_cfg.max_epochs, initial=st["epoch"], desc=out_dir.name,
               disable=None if progress is None else not progress, mininterval=2.0, leave=False)
    last_save_t, last_save_epoch = time.monotonic(), st["epoch"]
    t_run = time.monotonic() - st["elapsed_s"]
    bs = train_cfg.batch_size
    while not st["done"] and st["epoch"] < train_cfg.max_epochs:
        epoch = st["epoch"]  # 0-based index of the epoch being trained
        lr = train_cfg.lr * lr_factor(epoch, train_cfg.warmup_epochs, train_cfg.max_epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        order = torch.randperm(n_train, generator=generators["batch"]).to(device)
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        n_batches = 0
        for i in range(0, n_train, bs):
            batch = data[order[i:i + bs]]
            with _autocast(device, bf16):
                out = training_loss(model, batch, obj_cfg, epoch, generators["mask"],
                                    model_cfg.n_heldin, model_cfg.t_bins)
            loss = out["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            optimizer.step()
            contrast = out.get("contrast")
            contrast = loss.new_zeros(()) if contrast is None else contrast
            sums += torch.stack([loss.detach().double(), out["masked_nll"].detach().double(),
                                 torch.as_tensor(contrast, device=device).detach().double()])
            n_batches += 1
            st["step"] += 1
        st["epoch"] = epoch + 1
        means = (sums / n_batches).tolist()
        row = {"epoch": st["epoch"], "step": st["step"], "loss": means[0], "masked_nll": means[1],
               "contrast": means[2], "lr": lr, VAL_CO_BPS: None, VAL_NLL: None, VAL_MASKED_NLL: None}
        if not math.isfinite(means[0]):
            st["done"], st["stop_reason"] = True, "diverged"
            log.warning("epoch %d: non-finite training loss; stopping with the best checkpoint so far", st["epoch"])
        elif st["epoch"] % train_cfg.val_every == 0 or st["epoch"] == train_cfg.max_epochs:
            m = validate(st["epoch"])
            row.update(m)
            consider(m, st["epoch"])
            if should_stop(st["epoch"], st["best"]["epoch"], st["best_loss"]["epoch"], train_cfg.patience,
                           train_cfg.stop_rule):
                st["done"], st["stop_reason"] = True, "early_stopping"
                log.info("epoch %d: no progress (stop rule %r, patience %d; best %s at epoch %d, best %s "
                         "at epoch %d); stopping", st["epoch"], train_cfg.stop_rule, train_cfg.patience,
                         VAL_CO_BPS, st["best"]["epoch"], VAL_MASKED_NLL, st["best_loss"]["epoch"])
        if st["epoch"] >= train_cfg.max_epochs and not st["done"]:
            st["done"], st["stop_reason"] = True, "max_epochs"
        st["elapsed_s"] = time.monotonic() - t_run
        row["time_s"] = st["elapsed_s"]
        st["log"].append(row)
        bar.update(1)
        if row[VAL_CO_BPS] is not None:
            bar.set_postfix(loss=f"{means[0]:.4f}", cobps=f"{row[VAL_CO_BPS]:.4f}", refresh=False)
            log.info("epoch %d step %d loss %.5f %s %.5f", st["epoch"], st["step"], means[0], VAL_CO_BPS,
                     row[VAL_CO_BPS])
        if (not st["done"]
                and (st["epoch"] - last_save_epoch >= train_cfg.checkpoint_every_epochs
                     or time.monotonic() - last_save_t >= train_cfg.checkpoint_every_s)):
            save_state()
            last_save_t, last_save_epoch = time.monotonic(), st["epoch"]
    bar.close()
    if st["stop_reason"] == "":
        st["done"], st["stop_reason"] = True, "max_epochs"
    save_state()  # done: a kill while writing outputs resumes straight to writing them

    model.load_state_dict(st["best"]["weights"])
    best = st["best"]
    epochs_trained = st["epoch"]
    summary = {
        "best_epoch": best["epoch"], VAL_CO_BPS: best[VAL_CO_BPS], VAL_NLL: best[VAL_NLL],
        "epochs_run": epochs_trained, "steps": st["step"], "stop_reason": st["stop_reason"],
        "train_seconds": st["elapsed_s"],
        "seconds_per_epoch": st["elapsed_s"] / epochs_trained if epochs_trained else None,
        "device": device.type, "bf16": bf16, "n_parameters": n_parameters(model),
    }
    _write_outputs(out_dir, model, best, configs, params, summary, st["log"], val, test, device, train_cfg)
    if not train_cfg.keep_state:
        state_path.unlink(missing_ok=True)
    log.info("done: %s", summary)
    return summary


def _clear_outputs(out_dir: Path) -> None:
    """Remove earlier outputs (they are rewritten at the end, so none can outlive a failed or killed
    run and pass for its result) and temp files orphaned by a kill -9 in the middle of a write."""
    for name in OUTPUT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    for name in (*OUTPUT_FILES, STATE_FILE):
        for tmp in out_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _load_state(path: Path, run_id: str) -> dict[str, Any] | None:
    """The saved state of this run to resume from, or None to start afresh.

    A damaged state.pt (truncated, garbage, another format) would fail every rerun of the member the
    same way, so it is renamed aside (kept, never deleted), a WARNING naming it and the error goes to
    train.log, and the member starts afresh: training is deterministic, so the result is a clean run's.
    """
    from stndt.train.checkpoint import load_state_file, set_aside

    if not path.exists():
        return None
    st, problem = load_state_file(path)
    if st is None:
        aside = set_aside(path)
        log.warning("%s cannot be resumed (%s); kept it as %s and starting this member afresh",
                    path, problem, aside.name)
        return None
    if st.get("fingerprint") != run_id:
        log.warning("%s was saved for other parameters or data; starting afresh", path)
        return None
    return st


def _write_outputs(out_dir: Path, model: torch.nn.Module, best: dict[str, Any], configs: dict[str, Any],
                   params: dict[str, Any], summary: dict[str, Any], rows: list[dict[str, Any]],
                   val: PhaseTensors, test: PhaseTensors | None, device: torch.device,
                   train_cfg: TrainConfig) -> None:
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
    write_json(out_dir / "params.json", {
        "hyperparameters": flat,  # every resolved setting, flat (one members.csv row)
        **configs,
        "given": params,          # the params passed in (sampled + fixed)
        "training": summary,
    })
    _write_text(out_dir / "train_log.csv", log_csv_text(rows))
    # Inference in float32 even when training used bf16: cheap, and rates keep full precision.
    kw = {"device": device, "batch_size": train_cfg.eval_batch_size}
    save_h5(out_dir / "rates_val.h5", phase_rates(model, val, **kw))
    if test is not None:
        save_h5(out_dir / "rates_test.h5", phase_rates(model, test, **kw))
