"""The config's `evalai:` section (where `stndt.evaluate.evalai` submits) and a dataset's `evalai_result`
(a result downloaded from EvalAI, shown beside ours in the tables): checked when the workflow is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stndt.datasets import NLB_EVALAI_CHALLENGE, SUPPORTED_BIN_WIDTHS_MS
from stndt.errors import ConfigError

EVALAI_HOST = "https://eval.ai"  # EvalAI docs (evaluation_scripts.md): "API_SERVER: Use https://eval.ai"
EVALAI_METHOD_NAME = "STNDT ensemble"
EVALAI_KEYS = ("challenge", "phase", "host", "method_name")


@dataclass(frozen=True)
class EvalAISettings:
    """The `evalai:` section: where `stndt.evaluate.evalai` submits (no token: that lives in the environment)."""

    phases: dict[int, int]  # bin width (ms) -> phase id
    challenge: int = NLB_EVALAI_CHALLENGE
    host: str = EVALAI_HOST
    method_name: str = EVALAI_METHOD_NAME

    def phase_for(self, bin_width_ms: int) -> int:
        if bin_width_ms not in self.phases:
            raise ConfigError(
                f"evalai.phase: no phase id for {bin_width_ms} ms bins (bin_width_ms); set "
                f"`phase: <id>` or `phase: {{{bin_width_ms}: <id>}}`"
            )
        return self.phases[bin_width_ms]


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}: must be a positive integer (an EvalAI id), got {value!r}")
    return value


def evalai_settings(section: Mapping[str, Any] | None, bin_width_ms: int) -> EvalAISettings | None:
    """Check the config's `evalai:` section (None when absent) and return its typed view; errors name the
    key. The phase of the pipeline's bin width must be set: a dry run fails before anything is submitted.
    """
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise ConfigError(f"evalai: expected a mapping with keys {', '.join(EVALAI_KEYS)}, got {section!r}")
    unknown = sorted(set(section) - set(EVALAI_KEYS))
    if unknown:
        raise ConfigError(f"evalai.{unknown[0]}: unknown key; allowed: {', '.join(EVALAI_KEYS)}")
    if "phase" not in section:
        raise ConfigError(
            "evalai.phase: required: the id of the NLB challenge's Test phase on EvalAI (see "
            "README, 'Submitting to EvalAI'); a single id, or one per bin width {5: id, 20: id}"
        )
    phase = section["phase"]
    if isinstance(phase, Mapping):
        phases = {}
        for bw, pid in phase.items():
            try:
                width = int(bw)
            except (TypeError, ValueError):
                width = None
            if width not in SUPPORTED_BIN_WIDTHS_MS or isinstance(bw, bool):
                raise ConfigError(f"evalai.phase.{bw}: keys are bin widths in ms, {SUPPORTED_BIN_WIDTHS_MS}")
            phases[width] = _positive_int(pid, f"evalai.phase.{bw}")
    else:
        pid = _positive_int(phase, "evalai.phase")
        phases = {bw: pid for bw in SUPPORTED_BIN_WIDTHS_MS}
    host = section.get("host", EVALAI_HOST)
    if not isinstance(host, str) or not host.startswith(("https://", "http://")):
        raise ConfigError(f"evalai.host: must be an http(s) URL such as {EVALAI_HOST}, got {host!r}")
    method = section.get("method_name", EVALAI_METHOD_NAME)
    if not isinstance(method, str) or not method.strip():
        raise ConfigError(f"evalai.method_name: must be a non-empty string, got {method!r}")
    settings = EvalAISettings(
        phases=phases,
        challenge=_positive_int(section.get("challenge", NLB_EVALAI_CHALLENGE), "evalai.challenge"),
        host=host,
        method_name=method,
    )
    settings.phase_for(bin_width_ms)
    return settings


def check_evalai_result(where: str, path: Any, source: str) -> None:
    """The EvalAI result file of a real dataset must exist when the workflow starts (its content is
    checked by the tables job, which names the file and what is wrong)."""
    if source == "synthetic":
        raise ConfigError(
            f"{where}.evalai_result: a synthetic dataset is scored on its own test targets; "
            "EvalAI holds none of its trials"
        )
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}.evalai_result: expected the path of a JSON file, got {path!r}")
    if not Path(path).is_file():
        raise ConfigError(
            f"{where}.evalai_result: {path} is not an existing file (the result you downloaded "
            "from EvalAI for this dataset's submission)"
        )
