"""Training-loop settings of one ensemble member.

Kept in its own module (not with the epoch driver, stndt.train.driver) so that the search-space code
(stndt.train.search.space) can map flat hyperparameter names onto it without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from stndt.train.stopping import STOP_RULES


@dataclass(frozen=True)
class TrainConfig:
    """How one member is optimised. Defaults follow the published STNDT configuration.

    Epoch-valued settings (warmup_epochs, patience, max_epochs, val_every) are counted in passes over
    the training trials, as in the reference code. The learning rate is a pure function of the epoch
    (linear warm-up, then cosine decay reaching zero at max_epochs), so resuming needs no scheduler
    object, only the epoch counter.
    """

    max_epochs: int = 50_000
    val_every: int = 20  # epochs between validations (val co-bps decides the kept checkpoint)
    patience: int = 3_000  # epochs without progress before stopping (see stop_rule)
    # patience scaling with the member's own progress: a criterion last improved at epoch b waits
    # max(patience, patience_fraction * b) epochs (stndt.train.stopping); 0 = fixed (published runs)
    patience_fraction: float = 0.0
    # floor of the patience in optimizer steps (stndt.train.stopping.patience_floor): a dataset with few
    # training trials has few steps per epoch, and an epoch count alone would stop it before it learns
    patience_steps: int = 0
    # anneal before stopping: when the rule fires after epoch e, the learning rate falls linearly from
    # where the schedule stands to ~0 over cooldown_fraction x e epochs (rounded up to whole validation
    # intervals, ending at the cap at the latest), then the member stops. At the high learning rates of a
    # short budget val co-bps is noisy and the rule fires on a plateau that annealing lifts
    # (stndt.train.schedule.cooldown_epochs); 0 = stop at once (the published runs)
    cooldown_fraction: float = 0.0
    # floor of the cap in optimizer steps (stndt.train.stopping.epoch_cap): the cap in epochs is
    # max(max_epochs, ceil(max_steps / steps per epoch)) on the member's data, so the budget of a
    # dataset with few training trials is not cut short; 0 = max_epochs alone (the published runs)
    max_steps: int = 0
    # "both" (the published runs, reference runner.py): stop when val co-bps AND val masked loss have
    # both gone more than `patience` epochs without improving; "cobps": at least `patience` epochs
    # since the best val co-bps (this project's earlier rule). See stndt.train.stopping.
    stop_rule: str = "both"
    batch_size: int = 64
    eval_batch_size: int = 256  # inference only; no effect on results
    lr: float = 1e-3
    weight_decay: float = 5e-5
    adam_eps: float = 1e-8
    warmup_epochs: int = 5_000
    grad_clip: float = 200.0  # max global gradient norm (reference MAX_GRAD_NORM)
    seed: int = 0
    device: str = "auto"  # 'auto' = CUDA when available, else CPU; or any torch device string
    bf16: bool | None = None  # None = bfloat16 autocast where it is fast: CUDA, CPUs with AVX-512 BF16 / AMX
    num_threads: int | None = None  # torch CPU threads; None leaves torch's default
    # torch.use_deterministic_algorithms + CUBLAS_WORKSPACE_CONFIG: bitwise-equal reruns and exact resume
    # on CUDA too (CPU runs are deterministic without it); slower on CUDA, and torch raises naming any op
    # that has no deterministic CUDA kernel. Off in the published runs.
    deterministic: bool = False
    checkpoint_every_epochs: int = 100  # resumable state.pt is saved at the first of these two limits
    checkpoint_every_s: float = 300.0
    keep_state: bool = False  # keep state.pt after the outputs are written
    # also keep the best val masked loss / unmasked loss / contrastive loss weights and write their rates
    # (candidates/): the ensemble's candidate pool of evaluation.candidates 'checkpoints' (stndt.candidates)
    candidate_checkpoints: bool = False

    def __post_init__(self) -> None:
        positive = ("max_epochs", "val_every", "batch_size", "eval_batch_size", "checkpoint_every_epochs")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        for name in ("patience", "patience_steps", "max_steps", "warmup_epochs", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be a non-negative integer, got {value!r}")
        for name in ("lr", "grad_clip", "adam_eps", "checkpoint_every_s"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("patience_fraction", "cooldown_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
                raise ValueError(f"TrainConfig.{name} must be a number in [0, 10], got {value!r}")
        if not float(self.weight_decay) >= 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.stop_rule not in STOP_RULES:
            raise ValueError(f"TrainConfig.stop_rule must be one of {', '.join(STOP_RULES)}, got {self.stop_rule!r}")
        if self.bf16 not in (None, True, False):
            raise ValueError(f"TrainConfig.bf16 must be true, false or null, got {self.bf16!r}")
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"TrainConfig.deterministic must be true or false, got {self.deterministic!r}")
        if not isinstance(self.candidate_checkpoints, bool):
            raise ValueError(
                f"TrainConfig.candidate_checkpoints must be true or false, got {self.candidate_checkpoints!r}"
            )
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads < 1):
            raise ValueError(f"TrainConfig.num_threads must be a positive integer or null, got {self.num_threads!r}")
