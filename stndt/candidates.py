"""Ensemble candidates: which checkpoints of each member the ensemble step may choose from.

`evaluation: {candidates: ...}` (stndt.config; per dataset like `holdout`):

* ``best_cobps`` (default): one candidate per member, its best val co-bps checkpoint (best.pt, the
  member's rates_{val,test}.h5). Its candidate id is the member id (``m003``).
* ``checkpoints``: the reference's pool. trungle93/STNDT ``src/runner.py`` saves, per trial, a checkpoint
  each time one of these criteria improves at a validation (strictly), and ``src/nlb_ensemble.py`` walks
  every ``*.pth`` of every trial, ranks them all by val co-bps and averages the top N (N <= 2):

  - ``cobps``: ``{VARIANT}.contrast.cobps.pth`` (``.cobps.pth`` without contrast), best val co-bps: the
    member's best.pt here, candidate id = the member id (``m003``);
  - ``masked_loss``: ``.contrast.lve.pth`` / ``.lve.pth``, best val masked loss (``val_loss``):
    ``m003@masked_loss``;
  - ``unmasked_loss``: ``.contrast.lfve.pth`` / ``.lfve.pth``, best val unmasked loss (``no_mask_loss``):
    ``m003@unmasked_loss``;
  - ``contrast_loss``: ``.contrast.pth``, best val contrastive loss: ``m003@contrast_loss``;
  - ``.gr2.pth``, best R2 of predicted against TRUE rates: not reproduced (see below).

  The unmasked loss is the Poisson NLL of the held-in spikes of the val trials predicted from their
  unmasked input (held-out neurons and forward bins not scored). The contrastive loss is the val
  InfoNCE of two contrast-masked views, only for members with a contrastive term (not NDT / no_contrast).
  ``.gr2.pth`` is not a vel R2 checkpoint: it is the R2 of predicted against ground-truth rates, saved only
  when the val data hold true rates (``has_rates``), which NLB data never do, so the reference's pool on
  NLB has the four criteria above; this project does not track it (it would also need true rates at
  every validation). The reference tracks no vel R2 checkpoint (that would need a decoder fit at every
  validation). Its periodic ``.{n}.pth`` checkpoints are not written in its tuning runs (TUNE_MODE).

  Here, a criterion whose best epoch equals the best co-bps epoch or an earlier criterion's (same
  weights) is one candidate, not two (the reference ranks such copies twice, so its "ensemble of 2"
  could be one checkpoint twice).

`max_size` caps the ensemble size (the reference: 2; default: no cap). Members write their extra
candidates (only with ``checkpoints``) into ``{member}/candidates/``: CANDIDATES_JSON (every criterion's
best epoch and value, which one each duplicates, which were written) and ``rates_{phase}.h5`` with one
group per distinct extra candidate, holding the NLB rates dict of that checkpoint ({nlb_key: arrays}).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stndt.datasets import PHASES
from stndt.members import MemberFiles, member_file

BEST_COBPS, CHECKPOINTS = "best_cobps", "checkpoints"
CANDIDATE_MODES: tuple[str, ...] = (BEST_COBPS, CHECKPOINTS)

COBPS, MASKED_LOSS, UNMASKED_LOSS, CONTRAST_LOSS = "cobps", "masked_loss", "unmasked_loss", "contrast_loss"
#: The extra criteria, in the order duplicates are resolved (a later one equal to an earlier is a copy).
EXTRA_CRITERIA: tuple[str, ...] = (MASKED_LOSS, UNMASKED_LOSS, CONTRAST_LOSS)

CANDIDATES_DIR = "candidates"
CANDIDATES_JSON = "candidates.json"
CANDIDATES_FORMAT = "stndt-candidates-v1"
SEPARATOR = "@"


def rates_name(phase: str) -> str:
    """File name (in CANDIDATES_DIR) of the extra candidates' rates of a phase."""
    return f"rates_{phase}.h5"


def candidate_files(phases: tuple[str, ...] | list[str]) -> list[str]:
    """Every file of a member's CANDIDATES_DIR, relative to it."""
    return [CANDIDATES_JSON, *(rates_name(p) for p in phases)]


def candidate_id(member: str, criterion: str = COBPS) -> str:
    """`m003` for a member's best co-bps checkpoint, `m003@masked_loss` for another criterion's."""
    return member if criterion == COBPS else f"{member}{SEPARATOR}{criterion}"


def member_of(cid: str) -> str:
    """The member a candidate id belongs to."""
    return cid.split(SEPARATOR, 1)[0]


@dataclass(frozen=True)
class CandidateRates:
    """One extra candidate's rates: a group of a member's candidates/rates_{phase}.h5, read on demand
    (only that group), so ranking a pool of hundreds holds one candidate's rates at a time."""

    path: Path
    criterion: str

    def load(self) -> dict:
        """{nlb_key: {rate arrays}} of this candidate."""
        import h5py

        from stndt.io import _read_group

        if not Path(self.path).exists():
            raise FileNotFoundError(f"{self.path}: file does not exist")
        with h5py.File(self.path, "r") as f:
            if self.criterion not in f:
                raise KeyError(f"{self.path}: no candidate '{self.criterion}' (holds {sorted(f)})")
            groups = _read_group(f[self.criterion])
        if not groups or not all(isinstance(g, dict) and "eval_rates_heldout" in g for g in groups.values()):
            raise KeyError(f"{self.path}: candidate '{self.criterion}' is not a rates dict")
        return groups


def read_candidates(
    member: str, files: MemberFiles, phases: tuple[str, ...] | list[str] = PHASES
) -> list[dict[str, Any]]:
    """A member's distinct extra candidates, from its CANDIDATES_DIR files as given in `files` (names
    `candidates/candidates.json`, `candidates/rates_PHASE.h5`): [{"id", "criterion", "epoch",
    "rates": {phase: CandidateRates}}] in EXTRA_CRITERIA order (copies of another checkpoint left out)."""
    path = member_file(files, f"{CANDIDATES_DIR}/{CANDIDATES_JSON}", member)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: missing; the member was trained without candidate checkpoints "
            "(evaluation.candidates: checkpoints needs them: retrain it with that setting)"
        )
    info = json.loads(path.read_text())
    if info.get("format") != CANDIDATES_FORMAT:
        raise ValueError(f"{path}: format {info.get('format')!r}, not {CANDIDATES_FORMAT!r}")
    rates = {p: member_file(files, f"{CANDIDATES_DIR}/{rates_name(p)}", member) for p in phases}
    out = []
    for criterion in info["written"]:
        entry = info["criteria"][criterion]
        out.append(
            {
                "id": candidate_id(member, criterion),
                "criterion": criterion,
                "epoch": entry["epoch"],
                "rates": {p: CandidateRates(rates[p], criterion) for p in phases},
            }
        )
    return out
