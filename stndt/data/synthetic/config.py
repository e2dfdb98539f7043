"""Size and statistics of a synthetic dataset (SyntheticConfig) and the names every synthetic file
shares: one place, so the builders, the NWB writer and `make_truth` agree on them."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

TRUE_HELDIN = "true_spikes_heldin"    # hidden file: expected spikes per 1 ms bin of the held-in units
TRUE_HELDOUT = "true_spikes_heldout"  # ... and of the held-out units
SUBJECT = "sub-Synth"


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and statistics of a synthetic dataset. Defaults: a small dataset for a laptop CPU run.

    Trial counts are per split; for mc_rtt a "trial" is a 600 ms segment of continuous reaching.
    `n_conditions` is the number of task conditions (PSTH conditions): maze (trial_type, trial_version)
    pairs, area2_bump (direction, bump) pairs (even numbers: half active, half bump), dmfc_rsg
    (is_eye, theta, is_short, ts) tuples (min(8, n) prior/modality/direction groups, the rest ts values).
    """

    n_heldin: int = 40
    n_heldout: int = 12
    n_train: int = 120
    n_val: int = 40
    n_test: int = 40
    n_none: int = 2                 # trials of split 'none' in the train file (ignored by nlb_tools)
    n_conditions: int = 8
    latent_dim: int = 8             # even, >= 4
    mean_rate_hz: float = 10.0      # median of the units' mean rates (log-normal across units)
    modulation: float = 0.6         # std of each unit's log-rate within trials
    trial_noise: float = 0.3        # single-trial deviation of latent states, relative to the condition's
    outlier_fraction: float = 0.05  # dmfc_rsg: train trials flagged is_outlier (behaviour masked by nlb_tools)
    seed: int = 0

    def __post_init__(self) -> None:
        def need(name: str, ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"SyntheticConfig.{name}={getattr(self, name)!r}: must be {what}")

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                need(f.name, isinstance(value, (int, np.integer)) and not isinstance(value, bool), "an integer")
            else:
                need(f.name, isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
                     and math.isfinite(value), "a finite number")
        for name in ("n_heldin", "n_heldout", "n_conditions"):
            need(name, getattr(self, name) >= 1, ">= 1")
        for name in ("n_train", "n_val", "n_test"):
            need(name, getattr(self, name) >= 2, ">= 2 (nlb_tools needs several trials per split)")
        need("n_none", self.n_none >= 0, ">= 0")
        need("latent_dim", self.latent_dim >= 4 and self.latent_dim % 2 == 0, "an even number >= 4")
        need("mean_rate_hz", 0.5 <= self.mean_rate_hz <= 100, "between 0.5 and 100 Hz")
        need("modulation", 0 < self.modulation <= 2, "in (0, 2]")
        need("trial_noise", 0 <= self.trial_noise <= 2, "in [0, 2]")
        need("outlier_fraction", 0 <= self.outlier_fraction < 0.5, "in [0, 0.5)")
        need("seed", self.seed >= 0, ">= 0")
