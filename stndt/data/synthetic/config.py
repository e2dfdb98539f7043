"""Size and statistics of a synthetic dataset (SyntheticConfig) and the names every synthetic file
shares: one place, so the builders, the NWB writer and `make_truth` agree on them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

TRUE_HELDIN = "true_spikes_heldin"  # hidden file: expected spikes per 1 ms bin of the held-in units
TRUE_HELDOUT = "true_spikes_heldout"  # ... and of the held-out units
SUBJECT = "sub-Synth"


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and statistics of a synthetic dataset.

    Defaults: a small dataset for a laptop CPU run (52 units, 262 trials) whose statistics follow MC_Maze
    where they decide the benchmark's comparisons (docs/synthetic-data.md): ~21 train+val and ~5 test
    trials per condition, a skewed spread of mean rates and tuning depths across units, no rate pinned at
    a ceiling, and single-trial variability beyond the condition average (reaction times, reach speed,
    trial-specific latent states, shared gain fluctuations).

    Trial counts are per split; for mc_rtt a "trial" is a 600 ms segment of continuous reaching.
    `n_conditions` is the number of task conditions (PSTH conditions): maze (trial_type, trial_version)
    pairs, area2_bump (direction, bump) pairs (even numbers: half active, half bump), dmfc_rsg
    (is_eye, theta, is_short, ts) tuples (min(8, n) prior/modality/direction groups, the rest ts values).
    """

    n_heldin: int = 40
    n_heldout: int = 12
    n_train: int = 160
    n_val: int = 50
    n_test: int = 50
    n_none: int = 2  # trials of split 'none' in the train file (ignored by nlb_tools)
    n_conditions: int = 10  # MC_Maze: ~21 train+val and ~5 test trials per condition
    latent_dim: int = 16  # even, >= 4; half preparatory, half rotational (movement) dims
    # units: mean rates, tuning depth, rate ceiling
    mean_rate_hz: float = 10.0  # median of the units' mean rates (within trials)
    rate_spread: float = 0.8  # sd of the log of the units' mean rates (log-normal across units)
    modulation: float = 0.7  # median of the units' tuning depth: sd / mean of the true rate within trials
    modulation_spread: float = 0.6  # sd of the log tuning depth across units (some units are weakly tuned)
    max_rate_hz: float = 300.0  # soft ceiling: rates approach it smoothly, never reach or sit on it
    # single-trial variability beyond the condition average
    trial_noise: float = 0.3  # trial-specific deviation of the latent states, relative to the condition's
    speed_sd: float = 0.1  # reaching: sd of the log speed of a trial's movement dynamics (time scaling)
    onset_jitter_ms: float = 15.0  # reaching: sd of the neural onset around the recorded movement onset
    gain_sd: float = 0.15  # sd of the log of a slow (~1 s) gain fluctuation shared by all units
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
                need(
                    f.name,
                    isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value),
                    "a finite number",
                )
        for name in ("n_heldin", "n_heldout", "n_conditions"):
            need(name, getattr(self, name) >= 1, ">= 1")
        for name in ("n_train", "n_val", "n_test"):
            need(name, getattr(self, name) >= 2, ">= 2 (nlb_tools needs several trials per split)")
        need("n_none", self.n_none >= 0, ">= 0")
        need("latent_dim", self.latent_dim >= 4 and self.latent_dim % 2 == 0, "an even number >= 4")
        need("mean_rate_hz", 0.5 <= self.mean_rate_hz <= 100, "between 0.5 and 100 Hz")
        need("rate_spread", 0 <= self.rate_spread <= 2, "in [0, 2]")
        need("modulation", 0 < self.modulation <= 2, "in (0, 2]")
        need("modulation_spread", 0 <= self.modulation_spread <= 2, "in [0, 2]")
        need(
            "max_rate_hz",
            self.max_rate_hz >= 4 * self.mean_rate_hz and self.max_rate_hz <= 1000,
            "at least 4 x mean_rate_hz and at most 1000 Hz",
        )
        need("trial_noise", 0 <= self.trial_noise <= 2, "in [0, 2]")
        need("speed_sd", 0 <= self.speed_sd <= 0.5, "in [0, 0.5]")
        need("onset_jitter_ms", 0 <= self.onset_jitter_ms <= 50, "in [0, 50] ms")
        need("gain_sd", 0 <= self.gain_sd <= 1, "in [0, 1]")
        need("outlier_fraction", 0 <= self.outlier_fraction < 0.5, "in [0, 0.5)")
        need("seed", self.seed >= 0, ">= 0")
