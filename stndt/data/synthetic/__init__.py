"""Offline synthetic NLB datasets: NWB files in the exact layouts nlb_tools reads, with known true rates.

Why: the pipeline must run (and be tested) without DANDI, and a dataset whose true firing rates are
known lets every stage be checked against the best possible prediction. The true rates score the highest
co-bps any model can reach on average, so a model that is far below them, or one that beats them by a
wide margin, points to a bug (misaligned trials, a wrong behaviour lag, leaked targets).

Generative model
----------------
A latent state x(t) (1 ms grid, `latent_dim` dims) drives every unit through a smooth threshold-linear
(softplus) readout of one standardised latent direction, with per-unit thresholds and gains drawn so
that tuning depths (sd / mean of the rate) and mean rates are log-normal across units, as in cortex:
some units sparse and deeply tuned, some weakly tuned around a high baseline. Rates grow linearly with
the latents, a unit's peak stays below half of `max_rate_hz` on its calibration sample, and a smooth,
strictly increasing soft ceiling bends only the rarest peaks: no rate is ever clipped to a constant. A
slow gain fluctuation shared by all units (~1 s time scale) multiplies the rates. Spikes are an
inhomogeneous Poisson process of that rate (constant within each 1 ms bin), so binned counts are exactly
Poisson(true rate x bin width). Every piece of the latents is smooth, so rates vary on the time scale of
the task (no faster than nlb_tools' 70 ms PSTH smoothing can follow). docs/synthetic-data.md compares
the statistics with MC_Maze's and explains why they matter for psth R2. The latent dynamics follow the
task of each layout family (`stndt.datasets.NLBDataset.family`):

- mc_maze (and the MC_Maze scaling sizes), area2_bump: a condition-specific preparatory state builds up
  after target onset and is released at movement onset into damped rotations whose initial state depends
  on the condition (as in motor cortex, Churchland et al. 2012). Passive bump trials of area2_bump have no
  preparatory phase. Hand velocity is a linear readout of the rotational latents, shifted by the layout's
  behaviour lag, so "vel R2" is meaningful: neural activity leads velocity by `lag` ms (follows it for
  area2_bump, whose lag is negative).
- mc_rtt: the same building block for a continuous sequence of reaches in random directions; the
  recording is chopped into back-to-back 600 ms trials, as in the real dataset.
- dmfc_rsg: Ready-Set-Go. The state at Set stores the measured interval ts; between Set and Go it travels
  a fixed path whose traversal time is the produced interval tp, so neural speed is inversely related to
  tp and "tp corr" is meaningful (negative, as in the benchmark).
Every trial adds its own deviation to the condition's latent states (`trial_noise`), reaching trials run
their movement dynamics at their own speed (`speed_sd`) with a neural onset jittered around the recorded
movement onset (`onset_jitter_ms`), and the shared gain drifts (`gain_sd`): single-trial rates differ
from the condition average (PSTH) by ~15% of their variance. Conditions are dealt out evenly within each
split. A few train-file trials have split 'none' (ignored by nlb_tools, as in the real files); dmfc_rsg
flags a fraction of its train trials as outliers (too-early responses, `is_outlier`), which nlb_tools
masks out of the behaviour.

Files
-----
One continuous recording on a 1 ms grid from t = 0 holds the train/val (and a few 'none') trials, then
the test trials. It is written three times (all through pynwb):
- `raw_dir/sub-Synth_ses-<layout>_desc-train_behavior+ecephys.nwb`: the first block: train/val/none trials
  with their condition and behaviour fields, held-in and held-out units, continuous behaviour.
- `raw_dir/sub-Synth_ses-<layout>_desc-test_ecephys.nwb`: the second block, shifted to start at t = 0, as
  the public test file: held-in units only (`heldout` all False), only the window fields, split 'test'.
- `hidden_path`: the whole recording with everything, plus the true rates as TimeSeries
  `true_spikes_heldin` / `true_spikes_heldout` (expected spikes per 1 ms bin). Their names contain
  "spikes", so nlb_tools' `resample()` sums them into expected spikes per bin and its own windowing code
  cuts them exactly like the spikes (`make_truth`). Its NWB `notes` hold the SyntheticConfig (JSON).
Every file's `session_id` is the layout. The test block starts on a whole 100 ms of the recording, so its
trials fall into the same 5 / 20 ms bins in the test file and in the hidden recording.

Modules
-------
config (SyntheticConfig, shared names), layouts (what nlb_tools' layouts need), recording (the recording,
split schedule and its check), latents (reaching building blocks), reaching / rtt / dmfc (one builder per
layout family), spikes (readout and Poisson spikes), nwb (the NWB writer), generator (`generate`), truth
(`make_truth`).
"""

from __future__ import annotations

from stndt.data.synthetic.config import SUBJECT, TRUE_HELDIN, TRUE_HELDOUT, SyntheticConfig
from stndt.data.synthetic.generator import generate
from stndt.data.synthetic.layouts import raw_file_names
from stndt.data.synthetic.truth import make_truth

__all__ = ["SUBJECT", "TRUE_HELDIN", "TRUE_HELDOUT", "SyntheticConfig", "generate", "make_truth", "raw_file_names"]
